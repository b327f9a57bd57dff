//! Reader of the raw-bit stream in the decoder's inner loop.
//!
//! Reads the same layout as [`crate::bitio::BitReader`] (least-significant bit first), which is
//! what the encoder writes with. That reader refills byte by byte and returns a `Result` per
//! read; the quant decoder reads raw bits for most values and needs a branch-light read, so
//! this one refills 8 bytes at a time and, like the rANS decoder, records running past the end
//! in a flag that [`RawBits::finish`] reports.

use crate::CodecError;

/// Raw bits, least-significant first.
pub struct RawBits<'a> {
    bytes: &'a [u8],
    /// Next byte to load into `acc` (may pass `bytes.len()` when the stream is too short).
    pos: usize,
    acc: u64,
    /// Valid bits in `acc`.
    avail: u32,
}

impl<'a> RawBits<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        RawBits {
            bytes,
            pos: 0,
            acc: 0,
            avail: 0,
        }
    }

    /// Reads `count <= 32` bits (zeros past the end of the stream).
    #[inline]
    pub fn read(&mut self, count: u32) -> u32 {
        if self.avail < count {
            self.refill();
        }
        let v = self.acc & ((1u64 << count) - 1);
        self.acc >>= count;
        self.avail -= count;
        v as u32
    }

    /// Loads whole bytes until at least 56 bits are valid.
    #[inline(never)]
    fn refill(&mut self) {
        let take = (63 - self.avail) / 8;
        let word = match self.bytes.get(self.pos..self.pos + 8) {
            Some(w) => u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]),
            None => self.tail_word(),
        };
        let fresh = word & ((1u64 << (8 * take)) - 1);
        self.acc |= fresh << self.avail;
        self.pos += take as usize;
        self.avail += 8 * take;
    }

    /// The (zero-padded) last bytes of the stream as a little-endian word.
    fn tail_word(&self) -> u64 {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        rest.iter()
            .take(8)
            .enumerate()
            .fold(0, |w, (i, &b)| w | (b as u64) << (8 * i))
    }

    /// Checks that every bit read was in the stream and that no whole byte was left over.
    pub fn finish(self) -> Result<(), CodecError> {
        let consumed = self.pos as u64 * 8 - self.avail as u64;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitio::BitWriter;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn reads_what_the_bit_writer_wrote(items in proptest::collection::vec((any::<u32>(), 0u32..=32), 0..300)) {
            let mut w = BitWriter::new();
            for &(v, n) in &items {
                w.write(v.into(), n);
            }
            let bytes = w.finish();
            let mut r = RawBits::new(&bytes);
            for &(v, n) in &items {
                let mask = ((1u64 << n) - 1) as u32;
                prop_assert_eq!(r.read(n), v & mask);
            }
            prop_assert_eq!(r.finish(), Ok(()));
        }
    }

    #[test]
    fn reading_too_much_or_too_little_is_reported() {
        let mut r = RawBits::new(&[0xff, 0x01]);
        assert_eq!(r.read(9), 0x1ff);
        assert_eq!(r.read(8), 0);
        assert!(r.finish().is_err());
        let mut r = RawBits::new(&[0xff, 0x01]);
        assert_eq!(r.read(3), 7);
        assert!(r.finish().is_err());
    }
}
