//! Bit and byte level I/O shared by the codecs.
//!
//! Writers never fail; readers return [`CodecError::Corrupt`] instead of reading past the end,
//! so decoders built on them cannot panic on truncated input.

use crate::CodecError;

/// Appends bits least-significant first into a byte vector.
#[derive(Debug, Default, Clone)]
pub struct BitWriter {
    bytes: Vec<u8>,
    acc: u64,
    filled: u32,
}

impl BitWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the low `count` bits of `value` (`count` <= 57).
    pub fn write(&mut self, value: u64, count: u32) {
        debug_assert!(count <= 57);
        if count == 0 {
            return;
        }
        let mask = (1u64 << count) - 1;
        self.acc |= (value & mask) << self.filled;
        self.filled += count;
        while self.filled >= 8 {
            self.bytes.push(self.acc as u8);
            self.acc >>= 8;
            self.filled -= 8;
        }
    }

    /// Number of bits written so far.
    pub fn bit_len(&self) -> u64 {
        self.bytes.len() as u64 * 8 + self.filled as u64
    }

    /// Flushes the partial byte (zero padded) and returns the bytes.
    pub fn finish(mut self) -> Vec<u8> {
        if self.filled > 0 {
            self.bytes.push(self.acc as u8);
        }
        self.bytes
    }
}

/// Writes bits LSB-first like [`BitWriter`], with the same bytes, but flushes a whole `u64` at
/// a time instead of one byte per loop turn: for the streams that carry bits for every weight
/// (the pwl ranks and segment parameters, the quant raw bits), where `BitWriter` spent a loop
/// per write.
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

/// Reads bits least-significant first, as written by [`BitWriter`].
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    acc: u64,
    filled: u32,
}

impl<'a> BitReader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        BitReader {
            bytes,
            pos: 0,
            acc: 0,
            filled: 0,
        }
    }

    fn refill(&mut self) {
        while self.filled <= 56 && self.pos < self.bytes.len() {
            self.acc |= (self.bytes[self.pos] as u64) << self.filled;
            self.pos += 1;
            self.filled += 8;
        }
    }

    /// Reads `count` bits (`count` <= 57).
    pub fn read(&mut self, count: u32) -> Result<u64, CodecError> {
        debug_assert!(count <= 57);
        if count == 0 {
            return Ok(0);
        }
        if self.filled < count {
            self.refill();
            if self.filled < count {
                return Err(CodecError::Corrupt("bit stream ends early"));
            }
        }
        let v = self.acc & ((1u64 << count) - 1);
        self.acc >>= count;
        self.filled -= count;
        Ok(v)
    }
}

/// Appends little-endian integers and LEB128 varints to a byte vector.
pub trait PutBytes {
    /// Appends an unsigned LEB128 varint.
    fn put_varint(&mut self, v: u64);
    /// Appends a zigzag-mapped signed varint.
    fn put_varint_signed(&mut self, v: i64) {
        self.put_varint(((v << 1) ^ (v >> 63)) as u64);
    }
    /// Appends a little-endian `u32`.
    fn put_u32(&mut self, v: u32);
    /// Appends a little-endian `f32`.
    fn put_f32(&mut self, v: f32) {
        self.put_u32(v.to_bits());
    }
    /// Appends a varint length followed by the bytes.
    fn put_block(&mut self, block: &[u8]);
}

impl PutBytes for Vec<u8> {
    fn put_varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.push(v as u8);
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_block(&mut self, block: &[u8]) {
        self.put_varint(block.len() as u64);
        self.extend_from_slice(block);
    }
}

/// Reads what [`PutBytes`] writes, with bounds checks.
#[derive(Debug, Clone)]
pub struct ByteReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        ByteReader { bytes, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Reads one byte.
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    /// Reads a little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, CodecError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a little-endian `f32`.
    pub fn f32(&mut self) -> Result<f32, CodecError> {
        Ok(f32::from_bits(self.u32()?))
    }

    /// Reads an unsigned LEB128 varint of at most 10 bytes.
    pub fn varint(&mut self) -> Result<u64, CodecError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CodecError::Corrupt("varint longer than 10 bytes"))
    }

    /// Reads a zigzag-mapped signed varint.
    pub fn varint_signed(&mut self) -> Result<i64, CodecError> {
        let u = self.varint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// Reads a varint that must not exceed `max`, as a `usize`.
    pub fn varint_max(&mut self, max: u64) -> Result<usize, CodecError> {
        let v = self.varint()?;
        if v > max {
            return Err(CodecError::Corrupt("count out of range"));
        }
        Ok(v as usize)
    }

    /// Reads `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if n > self.remaining() {
            return Err(CodecError::Corrupt("payload ends early"));
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Reads a block written by [`PutBytes::put_block`].
    pub fn block(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.varint_max(self.remaining() as u64)?;
        self.take(n)
    }

    /// Everything not yet read.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.bytes[self.pos..];
        self.pos = self.bytes.len();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn word_writer_writes_the_bytes_of_bit_writer(
            items in proptest::collection::vec((any::<u64>(), 0u32..=57), 0..300),
        ) {
            let (mut words, mut bytes) = (WordWriter::default(), BitWriter::new());
            for &(v, n) in &items {
                words.write(v, n);
                bytes.write(v, n);
            }
            prop_assert_eq!(words.finish(), bytes.finish());
        }

        #[test]
        fn bits_round_trip(items in proptest::collection::vec((any::<u64>(), 0u32..=57), 0..200)) {
            let mut w = BitWriter::new();
            for &(v, n) in &items { w.write(v, n); }
            let bits = w.bit_len();
            let bytes = w.finish();
            prop_assert_eq!(bytes.len() as u64, bits.div_ceil(8));
            let mut r = BitReader::new(&bytes);
            for &(v, n) in &items {
                let mask = if n == 0 { 0 } else { (1u64 << n) - 1 };
                prop_assert_eq!(r.read(n).unwrap(), v & mask);
            }
        }

        #[test]
        fn varints_round_trip(vals in proptest::collection::vec(any::<i64>(), 0..100)) {
            let mut b = Vec::new();
            for &v in &vals { b.put_varint_signed(v); b.put_varint(v as u64); }
            let mut r = ByteReader::new(&b);
            for &v in &vals {
                prop_assert_eq!(r.varint_signed().unwrap(), v);
                prop_assert_eq!(r.varint().unwrap(), v as u64);
            }
            prop_assert!(r.u8().is_err());
        }
    }

    #[test]
    fn reading_past_the_end_is_an_error() {
        let mut r = BitReader::new(&[0xff]);
        assert_eq!(r.read(8).unwrap(), 0xff);
        assert!(r.read(1).is_err());
        assert!(ByteReader::new(&[0x80, 0x80]).varint().is_err());
    }
}
