//! Just enough of the protobuf wire format to find where fields lie in a buffer.
//!
//! prost decodes values but does not report their offsets, which splicing needs (the positions
//! of typed data fields and of the length prefixes enclosing them), so fields are walked here.

use std::ops::Range;

/// The most bytes a varint may take.
const MAX_VARINT_LEN: usize = 10;

/// A length prefix: where its varint lies in the buffer and the length it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LengthPrefix {
    pub offset: usize,
    pub width: usize,
    pub value: u64,
}

/// The value of one field record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Value {
    /// A varint, a fixed32 or a fixed64 (the walk never needs their values).
    Scalar,
    /// A length-delimited record: its prefix and the range of its content.
    Len(LengthPrefix, Range<usize>),
}

/// One field record: its field number and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Field {
    pub number: u64,
    pub value: Value,
}

/// Reads a varint at `*pos`, advancing `pos`; `None` if truncated or longer than 10 bytes.
pub(super) fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..MAX_VARINT_LEN {
        let byte = *buf.get(*pos + i)?;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            *pos += i + 1;
            return Some(value);
        }
    }
    None
}

/// Appends the shortest varint encoding of `value`.
pub(super) fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The width of the shortest varint encoding of `value`.
pub(super) fn varint_width(value: u64) -> usize {
    let bits = 64 - value.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// Iterates over the field records in `buf[range]`, with offsets into `buf`.
pub(super) struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Fields<'a> {
    /// Fields of the message occupying `buf[range]`.
    pub fn new(buf: &'a [u8], range: Range<usize>) -> Self {
        Fields {
            buf,
            pos: range.start,
            end: range.end.min(buf.len()),
        }
    }

    fn read_field(&mut self) -> Result<Field, String> {
        let at = self.pos;
        let key = self.varint(at)?;
        let number = key >> 3;
        let value = match key & 7 {
            0 => {
                self.varint(at)?;
                Value::Scalar
            }
            1 => self.skip(8, at).map(|_| Value::Scalar)?,
            5 => self.skip(4, at).map(|_| Value::Scalar)?,
            2 => self.len_value(at)?,
            wire_type => {
                return Err(format!(
                    "unsupported protobuf wire type {wire_type} at byte {at}"
                ))
            }
        };
        Ok(Field { number, value })
    }

    fn varint(&mut self, at: usize) -> Result<u64, String> {
        match read_varint(&self.buf[..self.end], &mut self.pos) {
            Some(v) => Ok(v),
            None => Err(format!(
                "truncated or malformed varint in field at byte {at}"
            )),
        }
    }

    fn skip(&mut self, n: usize, at: usize) -> Result<(), String> {
        if self.end - self.pos < n {
            return Err(format!("truncated field at byte {at}"));
        }
        self.pos += n;
        Ok(())
    }

    fn len_value(&mut self, at: usize) -> Result<Value, String> {
        let offset = self.pos;
        let value = self.varint(at)?;
        let prefix = LengthPrefix {
            offset,
            width: self.pos - offset,
            value,
        };
        let start = self.pos;
        if value > (self.end - start) as u64 {
            return Err(format!(
                "field at byte {at} claims {value} bytes but only {} remain",
                self.end - start
            ));
        }
        self.pos = start + value as usize;
        Ok(Value::Len(prefix, start..self.pos))
    }
}

impl Iterator for Fields<'_> {
    type Item = Result<Field, String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.end {
            return None;
        }
        let field = self.read_field();
        if field.is_err() {
            self.pos = self.end;
        }
        Some(field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varints_round_trip(value: u64) {
            let mut out = Vec::new();
            write_varint(&mut out, value);
            prop_assert_eq!(out.len(), varint_width(value));
            let mut pos = 0;
            prop_assert_eq!(read_varint(&out, &mut pos), Some(value));
            prop_assert_eq!(pos, out.len());
        }

        #[test]
        fn walking_garbage_never_panics(buf in proptest::collection::vec(any::<u8>(), 0..64)) {
            for field in Fields::new(&buf, 0..buf.len()) {
                if let Ok(Field { value: Value::Len(_, range), .. }) = field {
                    prop_assert!(range.end <= buf.len());
                }
            }
        }
    }

    #[test]
    fn finds_length_delimited_content() {
        // field 7 (LEN) holding 3 bytes, then field 1 varint 150.
        let buf = [0x3a, 3, 1, 2, 3, 0x08, 0x96, 0x01];
        let fields: Vec<_> = Fields::new(&buf, 0..buf.len()).collect();
        let prefix = LengthPrefix {
            offset: 1,
            width: 1,
            value: 3,
        };
        assert_eq!(
            fields[0],
            Ok(Field {
                number: 7,
                value: Value::Len(prefix, 2..5)
            })
        );
        assert_eq!(
            fields[1],
            Ok(Field {
                number: 1,
                value: Value::Scalar
            })
        );
    }
}
