//! The layout of a PyTorch checkpoint: the zip members to write, in order, each either kept
//! verbatim or filled with the bytes of one tensor, and the tensors expected back.

use pwlc_codecs::bitio::{ByteReader, PutBytes};

use crate::DType;

/// Identifies the layout encoding.
const MAGIC: &[u8; 8] = b"pwlc-pt1";

/// One zip member of the output.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Part {
    /// A member written as it was read (the pickle, `version`, `byteorder`, ...).
    Verbatim { name: String, data: Vec<u8> },
    /// A storage, written from the tensor at `index`.
    Storage { name: String, index: usize },
}

/// The name, dtype and shape of one tensor as `read` returned it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Spec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<u64>,
}

/// Everything `write` needs besides the tensor values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layout {
    pub parts: Vec<Part>,
    pub tensors: Vec<Spec>,
}

impl Layout {
    /// Serializes the layout.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.put_varint(self.parts.len() as u64);
        for part in &self.parts {
            match part {
                Part::Verbatim { name, data } => {
                    out.push(0);
                    out.put_block(name.as_bytes());
                    out.put_block(data);
                }
                Part::Storage { name, index } => {
                    out.push(1);
                    out.put_block(name.as_bytes());
                    out.put_varint(*index as u64);
                }
            }
        }
        out.put_varint(self.tensors.len() as u64);
        for spec in &self.tensors {
            out.put_block(spec.name.as_bytes());
            out.push(spec.dtype.code());
            out.put_varint(spec.shape.len() as u64);
            for &dim in &spec.shape {
                out.put_varint(dim);
            }
        }
        out
    }

    /// Parses what [`Layout::encode`] wrote; `None` if `bytes` is not such a layout.
    pub fn decode(bytes: &[u8]) -> Option<Layout> {
        let mut r = ByteReader::new(bytes);
        if r.take(MAGIC.len()).ok()? != MAGIC {
            return None;
        }
        let part_count = r.varint_max(r.remaining() as u64).ok()?;
        let parts = (0..part_count)
            .map(|_| decode_part(&mut r))
            .collect::<Option<Vec<_>>>()?;
        let tensor_count = r.varint_max(r.remaining() as u64).ok()?;
        let tensors = (0..tensor_count)
            .map(|_| decode_spec(&mut r))
            .collect::<Option<Vec<_>>>()?;
        let indices_valid = parts.iter().all(|p| match p {
            Part::Storage { index, .. } => *index < tensors.len(),
            Part::Verbatim { .. } => true,
        });
        (r.remaining() == 0 && indices_valid).then_some(Layout { parts, tensors })
    }
}

fn decode_part(r: &mut ByteReader) -> Option<Part> {
    let kind = r.u8().ok()?;
    let name = text(r)?;
    match kind {
        0 => Some(Part::Verbatim {
            name,
            data: r.block().ok()?.to_vec(),
        }),
        1 => Some(Part::Storage {
            name,
            index: r.varint_max(u32::MAX as u64).ok()?,
        }),
        _ => None,
    }
}

fn decode_spec(r: &mut ByteReader) -> Option<Spec> {
    let name = text(r)?;
    let dtype = DType::from_code(r.u8().ok()?).ok()?;
    let ndim = r.varint_max(r.remaining() as u64).ok()?;
    let shape = (0..ndim)
        .map(|_| r.varint().ok())
        .collect::<Option<Vec<_>>>()?;
    Some(Spec { name, dtype, shape })
}

fn text(r: &mut ByteReader) -> Option<String> {
    String::from_utf8(r.block().ok()?.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Layout {
        Layout {
            parts: vec![
                Part::Verbatim {
                    name: "a/data.pkl".into(),
                    data: b"\x80\x02.".to_vec(),
                },
                Part::Storage {
                    name: "a/data/0".into(),
                    index: 0,
                },
            ],
            tensors: vec![Spec {
                name: "w".into(),
                dtype: DType::BF16,
                shape: vec![2, 3],
            }],
        }
    }

    #[test]
    fn layout_round_trips() {
        let layout = sample();
        assert_eq!(Layout::decode(&layout.encode()), Some(layout));
    }

    #[test]
    fn storage_index_out_of_range_is_refused() {
        let mut layout = sample();
        layout.parts[1] = Part::Storage {
            name: "a/data/0".into(),
            index: 1,
        };
        assert_eq!(Layout::decode(&layout.encode()), None);
    }

    proptest! {
        #[test]
        fn decode_never_panics(cut in 0usize..64, at in 0usize..64, byte in any::<u8>()) {
            let mut bytes = sample().encode();
            let at = at % bytes.len();
            bytes[at] = byte;
            bytes.truncate(cut);
            let _ = Layout::decode(&bytes);
        }
    }
}
