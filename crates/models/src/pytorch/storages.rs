//! Finds the tensor storages of an unpickled checkpoint and the tensors that view them.
//!
//! Every storage of a checkpoint is described by a persistent id in its pickle
//! (`('storage', torch.FloatStorage, key, location, numel)`), usually as the first argument of
//! `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`. [`collect`] walks the
//! object graph from its root, naming each value by its dotted key path
//! (`state_dict.conv1.weight`), and gathers, per storage, every tensor view of it.

use std::collections::HashMap;

use super::pickle::{Graph, Node, NodeId, Object, MAX_DEPTH};
use super::Fault;
use crate::DType;

/// The element type of a `torch.<name>` storage class.
pub(crate) fn storage_dtype(name: &str) -> Option<DType> {
    Some(match name {
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "LongStorage" => DType::I64,
        "IntStorage" => DType::I32,
        "ShortStorage" => DType::I16,
        "CharStorage" => DType::I8,
        "ByteStorage" | "UntypedStorage" => DType::U8,
        "BoolStorage" => DType::Bool,
        _ => return None,
    })
}

/// One storage of the checkpoint.
#[derive(Debug, Clone)]
pub(crate) struct Storage {
    /// The key naming its bytes (`data/<key>` in the zip format).
    pub key: String,
    pub dtype: DType,
    /// Number of elements, as the pickle declares.
    pub numel: u64,
    /// Where the storage is used, in the order the walk met them (at least one).
    pub uses: Vec<Use>,
}

impl Storage {
    /// Size of the storage in bytes.
    pub fn byte_len(&self) -> Result<usize, Fault> {
        self.numel
            .checked_mul(self.dtype.size() as u64)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| self.fault("the storage size overflows"))
    }

    /// The key path the storage was first met at.
    pub fn first_path(&self) -> &str {
        self.uses.first().map_or("", |u| u.path.as_str())
    }

    /// A fault naming the storage's first tensor.
    pub fn fault(&self, message: &str) -> Fault {
        Fault::Tensor {
            tensor: self.first_path().to_string(),
            message: format!("storage '{}': {message}", self.key),
        }
    }

    /// The shape of a tensor that covers the whole storage exactly, when it is used by exactly
    /// one such contiguous view; `None` when it must be exposed as a flat storage.
    pub fn whole_tensor_shape(&self) -> Option<&[u64]> {
        let [Use {
            view: Some(view), ..
        }] = self.uses.as_slice()
        else {
            return None;
        };
        let covers = view.offset == 0
            && view.is_contiguous()
            && view.shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d)) == Some(self.numel);
        covers.then_some(view.shape.as_slice())
    }
}

/// One place a storage is used.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Use {
    /// Dotted key path of the tensor (or bare storage) in the checkpoint.
    pub path: String,
    /// The tensor's view of the storage; `None` for a storage saved on its own.
    pub view: Option<View>,
}

/// A strided view (`offset`, `shape`, `stride`, in elements) of a storage.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct View {
    pub offset: u64,
    pub shape: Vec<u64>,
    pub stride: Vec<u64>,
}

impl View {
    /// Row-major contiguity, ignoring the stride of dimensions of size 1 as PyTorch does.
    fn is_contiguous(&self) -> bool {
        let mut expected = 1u64;
        for (&size, &stride) in self.shape.iter().zip(&self.stride).rev() {
            if size != 1 && stride != expected {
                return false;
            }
            expected = expected.saturating_mul(size);
        }
        true
    }

    /// One past the last element the view reaches (0 for an empty view).
    fn end(&self) -> Option<u64> {
        if self.shape.contains(&0) {
            return Some(0);
        }
        self.shape
            .iter()
            .zip(&self.stride)
            .try_fold(self.offset, |end, (&size, &stride)| {
                end.checked_add((size - 1).checked_mul(stride)?)
            })?
            .checked_add(1)
    }
}

/// What [`collect`] found.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// The storages in the order the walk first met them.
    pub storages: Vec<Storage>,
    /// Every persistent-id node met, with the index of its storage.
    pub persids: Vec<(NodeId, usize)>,
}

/// Walks `graph` and gathers its storages and their uses, checking that every view stays
/// inside its storage.
pub(crate) fn collect(graph: &Graph) -> Result<Found, Fault> {
    let mut walk = Walk {
        graph,
        visited: vec![false; graph.nodes.len()],
        found: Found {
            storages: Vec::new(),
            persids: Vec::new(),
        },
        by_key: HashMap::new(),
    };
    walk.visit(graph.root, String::new(), 0)?;
    for storage in &walk.found.storages {
        check_views(storage)?;
    }
    Ok(walk.found)
}

fn check_views(storage: &Storage) -> Result<(), Fault> {
    for use_ in &storage.uses {
        let Some(view) = &use_.view else { continue };
        let end = view.end();
        if end.is_none_or(|end| end > storage.numel) {
            return Err(Fault::Tensor {
                tensor: use_.path.clone(),
                message: format!(
                    "the tensor (offset {}, shape {:?}, stride {:?}) reaches past the {} elements of storage '{}'",
                    view.offset, view.shape, view.stride, storage.numel, storage.key
                ),
            });
        }
    }
    Ok(())
}

/// The state of [`collect`].
struct Walk<'a> {
    graph: &'a Graph,
    /// Nodes already walked: each is walked once, at the first path it is met.
    visited: Vec<bool>,
    found: Found,
    by_key: HashMap<String, usize>,
}

impl Walk<'_> {
    fn visit(&mut self, id: NodeId, path: String, depth: usize) -> Result<(), Fault> {
        if self.visited[id] {
            return Ok(());
        }
        if depth > MAX_DEPTH {
            return Err(Fault::File(format!(
                "the checkpoint nests deeper than {MAX_DEPTH} levels at '{path}'"
            )));
        }
        self.visited[id] = true;
        let graph = self.graph;
        match graph.node(id) {
            Node::Dict(items) => self.visit_items(items, &path, depth),
            Node::Tuple(items) | Node::List(items) | Node::Set(items) => {
                self.visit_indexed(items, &path, depth)
            }
            Node::Object(object) => self.visit_object(object, path, depth),
            Node::PersId(_) => self.add_use(id, path, None).map(drop),
            _ => Ok(()),
        }
    }

    fn visit_items(
        &mut self,
        items: &[(NodeId, NodeId)],
        path: &str,
        depth: usize,
    ) -> Result<(), Fault> {
        for &(key, value) in items {
            let key = key_text(self.graph, key);
            self.visit(value, join(path, &key), depth + 1)?;
        }
        Ok(())
    }

    fn visit_indexed(&mut self, items: &[NodeId], path: &str, depth: usize) -> Result<(), Fault> {
        for (index, &item) in items.iter().enumerate() {
            self.visit(item, join(path, &index.to_string()), depth + 1)?;
        }
        Ok(())
    }

    /// A tensor rebuild call is a use of its storage; any other object (an `OrderedDict`, a
    /// `Parameter` wrapping a tensor) is looked through, its arguments keeping its path.
    fn visit_object(&mut self, object: &Object, path: String, depth: usize) -> Result<(), Fault> {
        let graph = self.graph;
        let args = graph.tuple(object.args).unwrap_or(&[]);
        match graph.global(object.callable) {
            Some(("torch._utils", "_rebuild_tensor" | "_rebuild_tensor_v2")) => {
                return self.tensor(args, path);
            }
            _ => {
                for &arg in args {
                    self.visit(arg, path.clone(), depth + 1)?;
                }
            }
        }
        self.visit_indexed(&object.appends, &path, depth)?;
        self.visit_items(&object.items, &path, depth)?;
        if let Some(state) = object.state {
            self.visit(state, path, depth + 1)?;
        }
        Ok(())
    }

    /// `_rebuild_tensor_v2(storage, storage_offset, size, stride, ...)`.
    fn tensor(&mut self, args: &[NodeId], path: String) -> Result<(), Fault> {
        let graph = self.graph;
        let fault = |message: &str| Fault::Tensor {
            tensor: path.clone(),
            message: message.to_string(),
        };
        let [storage, offset, size, stride, ..] = *args else {
            return Err(fault("tensor rebuild call has too few arguments"));
        };
        let Node::PersId(_) = graph.node(storage) else {
            return Err(fault("tensor is not backed by a storage"));
        };
        let ints = |id: NodeId| -> Option<Vec<u64>> {
            graph.tuple(id)?.iter().map(|&d| graph.uint(d)).collect()
        };
        let view = View {
            offset: graph
                .uint(offset)
                .ok_or_else(|| fault("bad storage offset"))?,
            shape: ints(size).ok_or_else(|| fault("bad tensor size"))?,
            stride: ints(stride).ok_or_else(|| fault("bad tensor stride"))?,
        };
        if view.shape.len() != view.stride.len() {
            return Err(fault("size and stride differ in length"));
        }
        self.visited[storage] = true;
        self.add_use(storage, path, Some(view)).map(drop)
    }

    /// Records a use of the storage that persistent id `persid` describes.
    fn add_use(
        &mut self,
        persid: NodeId,
        path: String,
        view: Option<View>,
    ) -> Result<usize, Fault> {
        let (key, dtype, numel) =
            describe(self.graph, persid).map_err(|message| Fault::Tensor {
                tensor: path.clone(),
                message,
            })?;
        let index = match self.by_key.get(&key) {
            Some(&index) => {
                let known = &self.found.storages[index];
                if known.dtype != dtype || known.numel != numel {
                    return Err(known.fault("described twice with different types or sizes"));
                }
                index
            }
            None => {
                self.found.storages.push(Storage {
                    key: key.clone(),
                    dtype,
                    numel,
                    uses: Vec::new(),
                });
                self.by_key.insert(key, self.found.storages.len() - 1);
                self.found.storages.len() - 1
            }
        };
        self.found.storages[index].uses.push(Use { path, view });
        self.found.persids.push((persid, index));
        Ok(index)
    }
}

/// Reads a storage persistent id: `('storage', type, key, location, numel)` as the zip format
/// writes it, or with a sixth item, a view description that must be `None`, as the legacy
/// format writes it.
fn describe(graph: &Graph, persid: NodeId) -> Result<(String, DType, u64), String> {
    let Node::PersId(arg) = graph.node(persid) else {
        return Err("not a persistent id".to_string());
    };
    let items = graph.tuple(*arg).ok_or("storage id is not a tuple")?;
    let (kind, storage_type, key, numel) = match *items {
        [kind, storage_type, key, _location, numel] => (kind, storage_type, key, numel),
        [kind, storage_type, key, _location, numel, view] => {
            if graph.node(view) != &Node::None {
                return Err("legacy storage views are not supported".to_string());
            }
            (kind, storage_type, key, numel)
        }
        _ => return Err("storage id does not have 5 items".to_string()),
    };
    if graph.text(kind).as_deref() != Some("storage") {
        return Err("persistent id is not a storage".to_string());
    }
    let dtype = match graph.global(storage_type) {
        Some(("torch", name)) => storage_dtype(name),
        _ => None,
    }
    .ok_or("unsupported storage type")?;
    let key = graph.text(key).ok_or("storage key is not a string")?;
    let numel = graph.uint(numel).ok_or("storage size is not a count")?;
    Ok((key, dtype, numel))
}

/// A dictionary key as a path component.
fn key_text(graph: &Graph, key: NodeId) -> String {
    match graph.node(key) {
        Node::Int(v) => v.to_string(),
        Node::Bool(b) => if *b { "True" } else { "False" }.to_string(),
        Node::None => "None".to_string(),
        _ => graph.text(key).unwrap_or_else(|| "?".to_string()),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(offset: u64, shape: &[u64], stride: &[u64]) -> View {
        View {
            offset,
            shape: shape.to_vec(),
            stride: stride.to_vec(),
        }
    }

    #[test]
    fn contiguity_ignores_unit_dimensions() {
        assert!(view(0, &[2, 3], &[3, 1]).is_contiguous());
        assert!(view(0, &[2, 1, 3], &[3, 99, 1]).is_contiguous());
        assert!(!view(0, &[3, 2], &[1, 3]).is_contiguous());
        assert!(view(0, &[], &[]).is_contiguous());
    }

    #[test]
    fn view_end_counts_the_last_element() {
        assert_eq!(view(4, &[6], &[1]).end(), Some(10));
        assert_eq!(view(0, &[3, 2], &[1, 3]).end(), Some(6));
        assert_eq!(view(9, &[0, 5], &[5, 1]).end(), Some(0));
        assert_eq!(view(0, &[], &[]).end(), Some(1));
        assert_eq!(view(0, &[u64::MAX], &[2]).end(), None);
    }

    #[test]
    fn whole_tensor_needs_one_exact_contiguous_use() {
        let mut storage = Storage {
            key: "0".into(),
            dtype: DType::F32,
            numel: 6,
            uses: vec![Use {
                path: "w".into(),
                view: Some(view(0, &[2, 3], &[3, 1])),
            }],
        };
        assert_eq!(storage.whole_tensor_shape(), Some(&[2u64, 3][..]));
        storage.numel = 7;
        assert_eq!(storage.whole_tensor_shape(), None);
        storage.numel = 6;
        storage.uses.push(storage.uses[0].clone());
        assert_eq!(storage.whole_tensor_shape(), None);
    }
}
