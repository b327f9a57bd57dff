//! Reader of the raw-bit stream, for the decoder's inner loops.
//!
//! Reads the same layout as [`crate::bitio::BitReader`] (least-significant bit first), which is
//! what the encoder writes with. That reader refills byte by byte and returns a `Result` per
//! read; the quant decoder reads raw bits for most values and needs a branch-free read. So this
//! one hands out a [`Window`] of fixed size over the bytes of the next [`WINDOW_READS`] reads,
//! which loads the 8 bytes at the current bit position on every read (at least 57 valid bits)
//! with no bounds check but a clamp, and, like the rANS decoder, leaves running past the end to
//! [`RawBits::finish`] to report. The encoder writes the stream with
//! [`crate::bitio::WordWriter`].

use crate::CodecError;

/// Most reads one [`Window`] serves, each of at most 32 bits.
pub const WINDOW_READS: usize = 256;

/// Byte offsets of reads are taken modulo this (a power of two): those of the first
/// [`WINDOW_READS`] reads are below it, and every 8-byte load stays inside the window.
pub const WRAP: usize = WINDOW_READS * 4;

/// Bytes of a [`Window`]: those of its reads, the first at a bit offset below 8, and the 8
/// bytes each read loads.
pub const WINDOW_BYTES: usize = WRAP + 8;

const _: () = assert!(WRAP.is_power_of_two());

/// Raw bits, least-significant first.
pub struct RawBits<'a> {
    bytes: &'a [u8],
    /// Bits read so far (may pass `8 * bytes.len()` when the stream is too short).
    position: usize,
}

impl<'a> RawBits<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        RawBits { bytes, position: 0 }
    }

    /// Runs `read` on a window over the bits from the current position (zeros past the end of
    /// the stream) and moves past the bits it read. The window serves up to [`WINDOW_READS`]
    /// reads; more read bits from its start again (never out of bounds).
    #[inline(always)]
    pub fn window<R>(&mut self, read: impl FnOnce(&mut Window<'_>) -> R) -> R {
        let at = self.position / 8;
        let padded;
        let bytes = match self.bytes.get(at..).and_then(<[u8]>::first_chunk) {
            Some(bytes) => bytes,
            None => {
                padded = self.padded_tail(at);
                &padded
            }
        };
        let mut window = Window {
            bytes,
            bit: self.position % 8,
        };
        let result = read(&mut window);
        self.position = 8 * at + window.bit;
        result
    }

    /// The bytes from `at` on, zero-padded to a window.
    #[cold]
    fn padded_tail(&self, at: usize) -> [u8; WINDOW_BYTES] {
        let mut padded = [0; WINDOW_BYTES];
        let rest = self.bytes.get(at..).unwrap_or_default();
        let len = rest.len().min(WINDOW_BYTES);
        padded[..len].copy_from_slice(&rest[..len]);
        padded
    }

    /// Checks that every bit read was in the stream and that no whole byte was left over.
    pub fn finish(self) -> Result<(), CodecError> {
        let consumed = self.position as u64;
        let length = self.bytes.len() as u64 * 8;
        if consumed > length {
            Err(CodecError::Corrupt("quant raw bits end early"))
        } else if length - consumed >= 8 {
            Err(CodecError::Corrupt("quant raw bits have trailing bytes"))
        } else {
            Ok(())
        }
    }
}

/// The bytes of the next reads of a [`RawBits`] (see [`RawBits::window`]).
pub struct Window<'w> {
    bytes: &'w [u8; WINDOW_BYTES],
    /// Bits read, counted from the first byte of `bytes`.
    bit: usize,
}

impl Window<'_> {
    /// Reads `count <= 32` bits.
    #[inline(always)]
    pub fn read(&mut self, count: u32) -> u32 {
        // Only a window used beyond its WINDOW_READS reads wraps around.
        let at = (self.bit / 8) % WRAP;
        let word = u64::from_le_bytes(*self.bytes[at..].first_chunk().unwrap_or(&[0; 8]));
        let v = (word >> (self.bit % 8)) & ((1u64 << (count % 64)) - 1);
        self.bit += count as usize;
        v as u32
    }
}

/// Access for a reader that locates many reads at once (the AVX2 one, `super::avx2`).
#[cfg(target_arch = "x86_64")]
impl<'w> Window<'w> {
    /// The window's bytes: the bits at [`Window::position`] `p` start at bit `p % 8` of byte
    /// `(p / 8) % WRAP`.
    pub fn bytes(&self) -> &'w [u8; WINDOW_BYTES] {
        self.bytes
    }

    /// The position of the next read, in bits from the start of [`Window::bytes`].
    pub fn position(&self) -> usize {
        self.bit
    }

    /// Moves past `count` bits that were read from [`Window::bytes`].
    pub fn skip(&mut self, count: usize) {
        self.bit += count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitio::BitWriter;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn reads_what_the_bit_writer_wrote(items in proptest::collection::vec((any::<u32>(), 0u32..=32), 0..700)) {
            let mut w = BitWriter::new();
            for &(v, n) in &items {
                w.write(v.into(), n);
            }
            let bytes = w.finish();
            let mut r = RawBits::new(&bytes);
            for group in items.chunks(WINDOW_READS) {
                r.window(|w| {
                    for &(v, n) in group {
                        let mask = ((1u64 << n) - 1) as u32;
                        assert_eq!(w.read(n), v & mask);
                    }
                });
            }
            prop_assert_eq!(r.finish(), Ok(()));
        }
    }

    #[test]
    fn reading_too_much_or_too_little_is_reported() {
        let mut r = RawBits::new(&[0xff, 0x01]);
        assert_eq!(r.window(|w| (w.read(9), w.read(8))), (0x1ff, 0));
        assert!(r.finish().is_err());
        let mut r = RawBits::new(&[0xff, 0x01]);
        assert_eq!(r.window(|w| w.read(3)), 7);
        assert!(r.finish().is_err());
    }
}
