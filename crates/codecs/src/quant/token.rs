//! Mapping of quantization indices to entropy-coded tokens plus raw bits.
//!
//! An index `q` is first zigzag-mapped to `z >= 0` (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...), so
//! the lowest bit of `z` is the sign. Small `z` (below `2^split`) are tokens of their own. A
//! larger `z` with its highest set bit at position `n` becomes a token made of `n`, the `msb`
//! bits below the highest one and the `lsb` lowest bits (the sign among them); the bits in
//! between go to the raw bit stream. Within one token the raw bits are close to uniform for
//! smooth distributions, so they lose little against coding `z` directly, while the alphabet
//! stays small (cheap models, fast decoding). One extra token, [`Tokenizer::verbatim`], marks a
//! value stored as its 32 raw `f32` bits.

use crate::CodecError;
use std::sync::OnceLock;

/// Largest |q| the quantizer uses: every such index converts to `f32` exactly.
pub const MAX_INDEX: u32 = (1 << 24) - 1;

/// Highest bit position a zigzag-mapped index can have (`2 * MAX_INDEX < 2^25`).
const MAX_TOP_BIT: u32 = 24;

/// Zigzag mapping of an index.
#[inline]
pub fn zigzag(q: i32) -> u32 {
    ((q << 1) ^ (q >> 31)) as u32
}

/// Inverse of [`zigzag`].
#[inline]
pub fn unzigzag(z: u32) -> i32 {
    ((z >> 1) as i32) ^ -((z & 1) as i32)
}

/// The token layout: `split`, `msb` and `lsb` as described in the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tokenizer {
    split: u32,
    msb: u32,
    lsb: u32,
}

/// How the decoder turns one token into a zigzag index: `z = base + (raw << lsb)` with
/// `raw_bits` raw bits, or a verbatim value when `raw_bits == VERBATIM_BITS`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenInfo {
    pub base: u32,
    pub raw_bits: u32,
}

/// `TokenInfo::raw_bits` of the verbatim token.
pub const VERBATIM_BITS: u32 = 32;

impl Tokenizer {
    /// The layout the encoder writes: `z < 16` direct, then 2 high bits and the sign in the token.
    pub const DEFAULT: Tokenizer = Tokenizer {
        split: 4,
        msb: 2,
        lsb: 1,
    };

    /// A layout from its three parameters, validated (`msb + lsb <= split <= 12`).
    pub fn new(split: u32, msb: u32, lsb: u32) -> Result<Tokenizer, CodecError> {
        if split > 12 || msb + lsb > split {
            return Err(CodecError::Corrupt("quant token layout out of range"));
        }
        Ok(Tokenizer { split, msb, lsb })
    }

    /// The three parameters, in the order [`Tokenizer::new`] takes them.
    pub fn params(self) -> [u32; 3] {
        [self.split, self.msb, self.lsb]
    }

    /// The token of verbatim values; also the number of index tokens.
    pub fn verbatim(self) -> u32 {
        (1 << self.split) + (MAX_TOP_BIT + 1 - self.split) * (1 << (self.msb + self.lsb))
    }

    /// Number of tokens, the verbatim token included.
    pub fn len(self) -> usize {
        self.verbatim() as usize + 1
    }

    /// Token, raw bits and their count for a zigzag index `z < 2^(MAX_TOP_BIT + 1)`.
    #[inline]
    pub fn split_index(self, z: u32) -> (u32, u32, u32) {
        if z < (1 << self.split) {
            return (z, 0, 0);
        }
        let n = 31 - z.leading_zeros();
        let raw_bits = n - self.msb - self.lsb;
        let high = (z >> (n - self.msb)) & ((1 << self.msb) - 1);
        let low = z & ((1 << self.lsb) - 1);
        let token = (1 << self.split) + (((n - self.split) << self.msb | high) << self.lsb | low);
        let raw = (z >> self.lsb) & ((1 << raw_bits) - 1);
        (token, raw, raw_bits)
    }

    /// Shift of the raw bits inside `z`.
    pub fn lsb(self) -> u32 {
        self.lsb
    }

    /// The decoding table, indexed by token.
    pub fn table(self) -> Vec<TokenInfo> {
        let mut table: Vec<TokenInfo> = (0..1u32 << self.split)
            .map(|z| TokenInfo {
                base: z,
                raw_bits: 0,
            })
            .collect();
        for n in self.split..=MAX_TOP_BIT {
            for high in 0..1u32 << self.msb {
                for low in 0..1u32 << self.lsb {
                    table.push(TokenInfo {
                        base: (1 << n) | high << (n - self.msb) | low,
                        raw_bits: n - self.msb - self.lsb,
                    });
                }
            }
        }
        table.push(TokenInfo {
            base: 0,
            raw_bits: VERBATIM_BITS,
        });
        table
    }
}

/// [`Tokenizer::split_index`] of the default layout, looked up for the small indices (the
/// vast majority of weights) instead of computed.
pub struct SplitTable {
    /// `token << 8 | raw bit count` of every `z < SMALL`.
    entries: Box<[u32]>,
}

/// Zigzag indices [`SplitTable`] looks up (|q| below 2048).
const SMALL: u32 = 1 << 12;

impl SplitTable {
    /// The table of [`Tokenizer::DEFAULT`], built once.
    pub fn default_layout() -> &'static SplitTable {
        static TABLE: OnceLock<SplitTable> = OnceLock::new();
        TABLE.get_or_init(|| SplitTable {
            entries: (0..SMALL)
                .map(|z| {
                    let (token, _, count) = Tokenizer::DEFAULT.split_index(z);
                    token << 8 | count
                })
                .collect(),
        })
    }

    /// What `Tokenizer::DEFAULT.split_index(z)` returns.
    #[inline(always)]
    pub fn split(&self, z: u32) -> (u32, u32, u32) {
        let layout = Tokenizer::DEFAULT;
        match self.entries.get(z as usize) {
            Some(&entry) => {
                let count = entry & 0xff;
                let raw = (z >> layout.lsb) & ((1 << count) - 1);
                (entry >> 8, raw, count)
            }
            None => layout.split_index(z),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn tokens_round_trip(q in -(MAX_INDEX as i32)..=MAX_INDEX as i32, layout in (0u32..=12, 0u32..4, 0u32..3)) {
            let (split, msb, lsb) = layout;
            prop_assume!(msb + lsb <= split);
            let t = Tokenizer::new(split, msb, lsb).unwrap();
            let table = t.table();
            prop_assert_eq!(table.len(), t.len());
            let z = zigzag(q);
            prop_assert_eq!(unzigzag(z), q);
            let (token, raw, bits) = t.split_index(z);
            prop_assert!(token < t.verbatim());
            let info = table[token as usize];
            prop_assert_eq!(info.raw_bits, bits);
            prop_assert_eq!(info.base + (raw << t.lsb()), z);
        }
    }

    proptest! {
        #[test]
        fn the_split_table_splits_like_the_default_layout(z in prop_oneof![0u32..2 * SMALL, 0u32..1 << (MAX_TOP_BIT + 1)]) {
            prop_assert_eq!(SplitTable::default_layout().split(z), Tokenizer::DEFAULT.split_index(z));
        }
    }

    #[test]
    fn invalid_layouts_are_rejected() {
        assert!(Tokenizer::new(13, 1, 1).is_err());
        assert!(Tokenizer::new(2, 2, 1).is_err());
        assert!(Tokenizer::new(4, 2, 1).is_ok());
    }
}
