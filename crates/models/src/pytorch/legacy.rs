//! The stream format of PyTorch before 1.6 (`_use_new_zipfile_serialization=False`).
//!
//! Five pickles in a row: a magic number, the protocol version (1001), system information
//! (endianness, type sizes), the saved object and the list of storage keys; then each storage
//! in that order as a little-endian `i64` element count followed by its bytes. Storage
//! persistent ids carry a sixth item, a view description, which must be `None`.

use std::collections::HashSet;

use bytes::Bytes;

use super::pickle::{self, Graph, Node};
use super::storages::{self, Found};
use super::Fault;

/// `torch.serialization.MAGIC_NUMBER` as the little-endian bytes of its `LONG1` opcode.
const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// `torch.serialization.PROTOCOL_VERSION`.
const PROTOCOL_VERSION: i64 = 1001;

/// A parsed legacy checkpoint.
#[derive(Debug)]
pub(crate) struct Legacy {
    pub graph: Graph,
    pub found: Found,
    /// The bytes of each storage of `found`, borrowed from the file.
    pub data: Vec<Bytes>,
}

/// True when `head` starts like a legacy checkpoint (a pickle holding the magic number).
pub(crate) fn looks_legacy(head: &[u8]) -> bool {
    head.len() >= 4 && head[0] == 0x80 && head[2] == 0x8a && head[3] == 10
}

/// Parses the legacy checkpoint `file`.
pub(crate) fn read(file: &Bytes) -> Result<Legacy, Fault> {
    let mut pos = 0;
    let mut next = |what: &str| -> Result<Graph, Fault> {
        let (graph, len) = pickle::parse(&file[pos..])
            .map_err(|e| Fault::File(format!("legacy checkpoint, {what} pickle: {e}")))?;
        pos += len;
        Ok(graph)
    };
    let magic = next("magic number")?;
    if magic.node(magic.root) != &Node::BigInt(MAGIC.to_vec()) {
        return Err(Fault::File(
            "not a PyTorch checkpoint (bad magic number)".into(),
        ));
    }
    let version = next("protocol version")?;
    if version.node(version.root) != &Node::Int(PROTOCOL_VERSION) {
        return Err(Fault::File("unsupported legacy protocol version".into()));
    }
    check_little_endian(&next("system information")?)?;
    let graph = next("main")?;
    let keys = storage_keys(&next("storage key")?)?;
    let found = storages::collect(&graph)?;
    let data = storage_data(file, pos, &keys, &found)?;
    Ok(Legacy { graph, found, data })
}

fn check_little_endian(info: &Graph) -> Result<(), Fault> {
    let little = match info.node(info.root) {
        Node::Dict(items) => items.iter().any(|&(k, v)| {
            info.text(k).as_deref() == Some("little_endian") && info.node(v) == &Node::Bool(true)
        }),
        _ => false,
    };
    if little {
        Ok(())
    } else {
        Err(Fault::File(
            "big-endian legacy checkpoints are not supported".into(),
        ))
    }
}

fn storage_keys(list: &Graph) -> Result<Vec<String>, Fault> {
    let Node::List(items) = list.node(list.root) else {
        return Err(Fault::File("legacy storage key list is not a list".into()));
    };
    items
        .iter()
        .map(|&id| list.text(id))
        .collect::<Option<_>>()
        .ok_or_else(|| Fault::File("legacy storage key is not a string".into()))
}

/// Slices each storage out of the records after the pickles, which come in the order of `keys`.
fn storage_data(
    file: &Bytes,
    mut pos: usize,
    keys: &[String],
    found: &Found,
) -> Result<Vec<Bytes>, Fault> {
    let mut data = vec![Bytes::new(); found.storages.len()];
    for key in keys {
        let index = found
            .storages
            .iter()
            .position(|s| &s.key == key)
            .ok_or_else(|| Fault::File(format!("legacy storage '{key}' is used by no tensor")))?;
        let storage = &found.storages[index];
        let count = file
            .get(pos..pos + 8)
            .ok_or_else(|| storage.fault("the file ends before the storage"))?;
        let count = u64::from_le_bytes(count.try_into().unwrap_or_default());
        if count != storage.numel {
            return Err(storage.fault(&format!(
                "the file holds {count} elements, the pickle declares {}",
                storage.numel
            )));
        }
        let start = pos + 8;
        let end = start
            .checked_add(storage.byte_len()?)
            .filter(|&end| end <= file.len())
            .ok_or_else(|| storage.fault("the file ends inside the storage"))?;
        data[index] = file.slice(start..end);
        pos = end;
    }
    if let Some(missing) = found.storages.iter().find(|s| !keys.contains(&s.key)) {
        return Err(missing.fault("the storage is not in the file"));
    }
    Ok(data)
}

/// The pickle of `legacy` as the zip format wants it: each storage id becomes
/// `('storage', type, '<index>', location, numel)`, the key being the storage's position.
pub(crate) fn zip_pickle(legacy: &Legacy) -> Result<Vec<u8>, Fault> {
    let mut graph = legacy.graph.clone();
    let mut done = HashSet::new();
    for &(persid, index) in &legacy.found.persids {
        if !done.insert(persid) {
            continue;
        }
        let Node::PersId(arg) = *graph.node(persid) else {
            continue;
        };
        let items = graph.tuple(arg).unwrap_or(&[]).to_vec();
        let [kind, storage_type, _key, location, numel, ..] = items[..] else {
            continue;
        };
        let key = graph.push(Node::Str(index.to_string().into_bytes()));
        let tuple = graph.push(Node::Tuple(vec![kind, storage_type, key, location, numel]));
        graph.nodes[persid] = Node::PersId(tuple);
    }
    pickle::write(&graph).map_err(|e| Fault::File(format!("cannot rewrite the pickle: {e}")))
}
