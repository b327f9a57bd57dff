//! A bit writer for the pwl streams that flushes a 64-bit word at a time.

/// Writes bits LSB-first like [`crate::bitio::BitWriter`], with the same bytes, but flushes a
/// whole `u64` at a time instead of one byte per loop turn: the streams carry a rank for every
/// weight, and `BitWriter` spent a loop per write.
#[derive(Debug, Default)]
pub struct WordWriter {
    bytes: Vec<u8>,
    /// Pending bits, the low `filled` (< 64) ones valid, zeros above.
    acc: u64,
    filled: u32,
}

impl WordWriter {
    /// A writer with room for `bytes` bytes (it flushes whole words, so it reserves up to seven
    /// more).
    pub fn with_capacity(bytes: usize) -> Self {
        WordWriter {
            bytes: Vec::with_capacity(bytes.saturating_add(7)),
            ..WordWriter::default()
        }
    }

    /// Writes the low `count` (<= 57) bits of `value`.
    #[inline]
    pub fn write(&mut self, value: u64, count: u32) {
        debug_assert!(count <= 57);
        let v = value & ((1u64 << count) - 1);
        self.acc |= v << self.filled;
        let total = self.filled + count;
        if total < 64 {
            self.filled = total;
            return;
        }
        self.bytes.extend_from_slice(&self.acc.to_le_bytes());
        // `total >= 64` with `count <= 57` means `filled > 7`: the shift is below 64.
        self.acc = v >> (64 - self.filled);
        self.filled = total - 64;
    }

    /// The bytes, the last one zero padded.
    pub fn finish(mut self) -> Vec<u8> {
        let tail = self.filled.div_ceil(8) as usize;
        self.bytes
            .extend_from_slice(&self.acc.to_le_bytes()[..tail]);
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitio::BitWriter;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn pwl_word_writer_writes_the_bytes_of_bit_writer(
            items in proptest::collection::vec((any::<u64>(), 0u32..=57), 0..300),
        ) {
            let (mut words, mut bytes) = (WordWriter::default(), BitWriter::new());
            for &(v, n) in &items {
                words.write(v, n);
                bytes.write(v, n);
            }
            prop_assert_eq!(words.finish(), bytes.finish());
        }
    }
}
