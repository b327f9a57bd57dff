//! Finds every `TensorProto` of a serialized `ModelProto`, with its position and the length
//! prefixes enclosing it.

use std::ops::Range;

use super::wire::{Field, Fields, LengthPrefix, Value};

/// The deepest message nesting walked, the same bound as prost's decoder (and protobuf C++).
pub(super) const MAX_DEPTH: usize = 100;

/// Where a tensor sits in the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// An initializer of the main graph or of a subgraph.
    Initializer,
    /// Any other tensor (attribute values, sparse initializers): kept as is.
    Other,
}

/// One `TensorProto` found in the model file.
#[derive(Debug, Clone)]
pub(super) struct FoundTensor {
    pub role: Role,
    /// The message's bytes in the file.
    pub span: Range<usize>,
    /// Length prefixes enclosing the message, outermost first (the last is its own).
    pub enclosing: Vec<LengthPrefix>,
}

/// The message types walked on the way to tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Model,
    TrainingInfo,
    Function,
    Graph,
    Node,
    Attribute,
    Sparse,
    Tensor(Role),
}

/// The kind of the message in field `number` of a `kind` message, if it can lead to tensors
/// (field numbers from onnx.proto).
fn child_kind(kind: Kind, number: u64) -> Option<Kind> {
    use Kind::*;
    Some(match (kind, number) {
        (Model, 7) | (TrainingInfo, 1 | 2) | (Attribute, 6 | 11) => Graph,
        (Model, 20) => TrainingInfo,
        (Model, 25) => Function,
        (Function, 7) | (Graph, 1) => Node,
        (Function, 11) | (Node, 5) => Attribute,
        (Graph, 5) => Tensor(Role::Initializer),
        (Graph, 15) | (Attribute, 22 | 23) => Sparse,
        (Attribute, 5 | 10) | (Sparse, 1 | 2) => Tensor(Role::Other),
        _ => return None,
    })
}

/// Every tensor of the `ModelProto` in `buf`, in file order.
pub(super) fn find_tensors(buf: &[u8]) -> Result<Vec<FoundTensor>, String> {
    let mut walk = Walk {
        buf,
        enclosing: Vec::new(),
        found: Vec::new(),
    };
    walk.message(Kind::Model, 0..buf.len())?;
    Ok(walk.found)
}

struct Walk<'a> {
    buf: &'a [u8],
    enclosing: Vec<LengthPrefix>,
    found: Vec<FoundTensor>,
}

impl Walk<'_> {
    fn message(&mut self, kind: Kind, range: Range<usize>) -> Result<(), String> {
        if self.enclosing.len() > MAX_DEPTH {
            return Err(format!(
                "protobuf messages nested deeper than {MAX_DEPTH} levels"
            ));
        }
        for field in Fields::new(self.buf, range) {
            let Field { number, value } = field?;
            if let (Some(child), Value::Len(prefix, content)) = (child_kind(kind, number), value) {
                self.enclosing.push(prefix);
                self.child(child, content)?;
                self.enclosing.pop();
            }
        }
        Ok(())
    }

    fn child(&mut self, kind: Kind, content: Range<usize>) -> Result<(), String> {
        match kind {
            Kind::Tensor(role) => {
                self.found.push(FoundTensor {
                    role,
                    span: content,
                    enclosing: self.enclosing.clone(),
                });
                Ok(())
            }
            _ => self.message(kind, content),
        }
    }
}
