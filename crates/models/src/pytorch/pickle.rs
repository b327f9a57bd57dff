//! A defensive reader and writer for the pickle subset that PyTorch checkpoints use.
//!
//! A pickle is a program for a small stack machine; [`parse`] runs it without calling anything,
//! building a [`Graph`] of nodes instead of Python objects. Only globals on an allowlist (the
//! ones `torch.load(weights_only=True)` accepts and this adapter understands) may appear, so a
//! file that would run foreign code is refused rather than silently passed through. [`write`]
//! turns a graph back into a protocol-2 pickle using only opcodes the weights-only unpickler of
//! PyTorch accepts.
//!
//! Hand-written because the `pytorch-reader` crate, which parses these pickles, keeps its
//! parser private and hands back tensors as a hash map of gathered copies: it gives neither the
//! key order, nor the storage keys and view offsets, nor the pickle itself, and writing the
//! file back needs all of them.

use std::collections::HashMap;

/// Index of a node in a [`Graph`].
pub(crate) type NodeId = usize;

/// One value of an unpickled object graph.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too wide for `i64`, as little-endian two's complement bytes.
    BigInt(Vec<u8>),
    Float(f64),
    /// A text string, as the UTF-8 bytes stored (Python allows lone surrogates in them).
    Str(Vec<u8>),
    /// A Python 2 byte string (`BINSTRING`).
    ByteString(Vec<u8>),
    Bytes(Vec<u8>),
    Tuple(Vec<NodeId>),
    List(Vec<NodeId>),
    Dict(Vec<(NodeId, NodeId)>),
    Set(Vec<NodeId>),
    Global {
        module: String,
        name: String,
    },
    Object(Object),
    /// A persistent id: in a checkpoint, the description of a tensor storage.
    PersId(NodeId),
}

/// An object made by calling a global (`REDUCE` or `NEWOBJ`), then filled in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Object {
    /// True when made by `NEWOBJ` (`cls.__new__(cls, *args)`), false for `REDUCE`.
    pub new_obj: bool,
    pub callable: NodeId,
    pub args: NodeId,
    /// Entries added by `SETITEM(S)` (an `OrderedDict` is an object filled this way).
    pub items: Vec<(NodeId, NodeId)>,
    /// Entries added by `APPEND(S)`.
    pub appends: Vec<NodeId>,
    /// The argument of `BUILD`.
    pub state: Option<NodeId>,
}

/// An unpickled object graph: nodes and the root the pickle returned.
#[derive(Debug, Clone)]
pub(crate) struct Graph {
    pub nodes: Vec<Node>,
    pub root: NodeId,
}

impl Graph {
    /// The node `id` (ids come from the graph itself, so they are in range).
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// Adds a node and returns its id.
    pub fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// The items of a tuple node, or `None` for any other node.
    pub fn tuple(&self, id: NodeId) -> Option<&[NodeId]> {
        match self.node(id) {
            Node::Tuple(items) => Some(items),
            _ => None,
        }
    }

    /// The `(module, name)` of a global node, or `None` for any other node.
    pub fn global(&self, id: NodeId) -> Option<(&str, &str)> {
        match self.node(id) {
            Node::Global { module, name } => Some((module, name)),
            _ => None,
        }
    }

    /// A non-negative integer node as `u64`.
    pub fn uint(&self, id: NodeId) -> Option<u64> {
        match self.node(id) {
            Node::Int(v) => u64::try_from(*v).ok(),
            _ => None,
        }
    }

    /// A text string node, decoded (invalid UTF-8 replaced).
    pub fn text(&self, id: NodeId) -> Option<String> {
        match self.node(id) {
            Node::Str(b) | Node::ByteString(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// The module-level globals a checkpoint may name: those `torch.load(weights_only=True)`
/// allows, less the tensor kinds (quantized, sparse, nested, ...) this adapter cannot map.
fn is_allowed_global(module: &str, name: &str) -> bool {
    match module {
        "collections" => matches!(name, "OrderedDict" | "Counter"),
        "torch._utils" => matches!(
            name,
            "_rebuild_tensor"
                | "_rebuild_tensor_v2"
                | "_rebuild_parameter"
                | "_rebuild_parameter_with_state"
        ),
        "torch._tensor" => name == "_rebuild_from_type_v2",
        "torch.nn.parameter" => name == "Parameter",
        "torch.serialization" => name == "_get_layout",
        "_codecs" => name == "encode",
        "builtins" | "__builtin__" => matches!(name, "set" | "bytearray" | "complex"),
        "torch" => {
            matches!(name, "Size" | "Tensor" | "device" | "UntypedStorage")
                || super::storages::storage_dtype(name).is_some()
                || is_dtype_name(name)
        }
        _ => false,
    }
}

/// Names of `torch.dtype` objects (`torch.float32`, ...), which checkpoints may hold as values.
fn is_dtype_name(name: &str) -> bool {
    const DTYPES: [&str; 20] = [
        "float32",
        "float",
        "float64",
        "double",
        "float16",
        "half",
        "bfloat16",
        "int64",
        "long",
        "int32",
        "int",
        "int16",
        "short",
        "int8",
        "uint8",
        "bool",
        "complex64",
        "complex128",
        "uint16",
        "uint32",
    ];
    DTYPES.contains(&name)
}

/// Pickle opcodes handled here (names as in CPython's `pickletools`).
mod op {
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const POP: u8 = b'0';
    pub const POP_MARK: u8 = b'1';
    pub const DUP: u8 = b'2';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const BININT2: u8 = b'M';
    pub const NONE: u8 = b'N';
    pub const BINPERSID: u8 = b'Q';
    pub const REDUCE: u8 = b'R';
    pub const BINSTRING: u8 = b'T';
    pub const SHORT_BINSTRING: u8 = b'U';
    pub const BINUNICODE: u8 = b'X';
    pub const APPEND: u8 = b'a';
    pub const BUILD: u8 = b'b';
    pub const GLOBAL: u8 = b'c';
    pub const DICT: u8 = b'd';
    pub const EMPTY_DICT: u8 = b'}';
    pub const APPENDS: u8 = b'e';
    pub const BINGET: u8 = b'h';
    pub const LONG_BINGET: u8 = b'j';
    pub const LIST: u8 = b'l';
    pub const EMPTY_LIST: u8 = b']';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const SETITEM: u8 = b's';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const SETITEMS: u8 = b'u';
    pub const BINFLOAT: u8 = b'G';
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const PROTO: u8 = 0x80;
    pub const NEWOBJ: u8 = 0x81;
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
    pub const LONG4: u8 = 0x8b;
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES8: u8 = 0x8e;
    pub const EMPTY_SET: u8 = 0x8f;
    pub const ADDITEMS: u8 = 0x90;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const MEMOIZE: u8 = 0x94;
    pub const FRAME: u8 = 0x95;
}

/// Runs the pickle at the start of `bytes`. Returns the graph and the offset just past its
/// `STOP` (legacy checkpoints are several pickles in a row).
pub(crate) fn parse(bytes: &[u8]) -> Result<(Graph, usize), String> {
    let mut machine = Machine {
        input: bytes,
        pos: 0,
        nodes: Vec::new(),
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    loop {
        let at = machine.pos;
        let code = machine.take(1)?[0];
        if code == op::STOP {
            let root = machine.pop()?;
            let graph = Graph {
                nodes: machine.nodes,
                root,
            };
            return Ok((graph, machine.pos));
        }
        machine
            .step(code)
            .map_err(|e| format!("pickle opcode 0x{code:02x} at byte {at}: {e}"))?;
    }
}

/// The state of the pickle machine while it runs.
struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    nodes: Vec<Node>,
    stack: Vec<NodeId>,
    /// Stack lengths at each open `MARK`.
    marks: Vec<usize>,
    memo: HashMap<u64, NodeId>,
}

impl Machine<'_> {
    /// Executes one opcode (all but `STOP`).
    fn step(&mut self, code: u8) -> Result<(), String> {
        match code {
            op::PROTO => self.proto(),
            op::FRAME => self.take(8).map(drop),
            op::MARK => {
                self.marks.push(self.stack.len());
                Ok(())
            }
            op::POP => self.pop_or_mark(),
            op::POP_MARK => self.pop_mark().map(drop),
            op::DUP => {
                let top = self.top()?;
                self.stack.push(top);
                Ok(())
            }
            op::BINPUT => self.put(|m| Ok(u64::from(m.take(1)?[0]))),
            op::LONG_BINPUT => self.put(|m| m.u32().map(u64::from)),
            op::MEMOIZE => self.put(|m| Ok(m.memo.len() as u64)),
            op::BINGET => self.get(|m| Ok(u64::from(m.take(1)?[0]))),
            op::LONG_BINGET => self.get(|m| m.u32().map(u64::from)),
            op::GLOBAL => self.global(),
            op::STACK_GLOBAL => self.stack_global(),
            op::REDUCE | op::NEWOBJ => self.call(code == op::NEWOBJ),
            op::BUILD => self.build(),
            op::BINPERSID => {
                let pid = self.pop()?;
                self.push(Node::PersId(pid));
                Ok(())
            }
            op::APPEND | op::APPENDS | op::SETITEM | op::SETITEMS | op::ADDITEMS => self.fill(code),
            _ => self.value(code),
        }
    }

    /// Executes an opcode that pushes a new value.
    fn value(&mut self, code: u8) -> Result<(), String> {
        let node = match code {
            op::NONE => Node::None,
            op::NEWTRUE => Node::Bool(true),
            op::NEWFALSE => Node::Bool(false),
            op::BININT => Node::Int(i64::from(self.u32()? as i32)),
            op::BININT1 => Node::Int(i64::from(self.take(1)?[0])),
            op::BININT2 => {
                let b = self.take(2)?;
                Node::Int(i64::from(u16::from_le_bytes([b[0], b[1]])))
            }
            op::LONG1 => {
                let n = usize::from(self.take(1)?[0]);
                long(self.take(n)?)
            }
            op::LONG4 => {
                let n = self.u32()? as usize;
                long(self.take(n)?)
            }
            op::BINFLOAT => {
                let b = self.take(8)?;
                let mut be = [0u8; 8];
                be.copy_from_slice(b);
                Node::Float(f64::from_be_bytes(be))
            }
            op::BINUNICODE => Node::Str(self.sized_u32()?),
            op::SHORT_BINUNICODE => Node::Str(self.sized_u8()?),
            op::BINUNICODE8 => Node::Str(self.sized_u64()?),
            op::BINSTRING => Node::ByteString(self.sized_u32()?),
            op::SHORT_BINSTRING => Node::ByteString(self.sized_u8()?),
            op::BINBYTES => Node::Bytes(self.sized_u32()?),
            op::SHORT_BINBYTES => Node::Bytes(self.sized_u8()?),
            op::BINBYTES8 => Node::Bytes(self.sized_u64()?),
            op::EMPTY_TUPLE => Node::Tuple(Vec::new()),
            op::EMPTY_LIST => Node::List(Vec::new()),
            op::EMPTY_DICT => Node::Dict(Vec::new()),
            op::EMPTY_SET => Node::Set(Vec::new()),
            op::TUPLE => Node::Tuple(self.pop_mark()?),
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let n = usize::from(code - op::TUPLE1 + 1);
                Node::Tuple(self.pop_n(n)?)
            }
            op::LIST => Node::List(self.pop_mark()?),
            op::DICT => Node::Dict(pairs(self.pop_mark()?)?),
            _ => return Err("unsupported opcode".to_string()),
        };
        self.push(node);
        Ok(())
    }

    fn proto(&mut self) -> Result<(), String> {
        let version = self.take(1)?[0];
        if version > 5 {
            return Err(format!("unknown pickle protocol {version}"));
        }
        Ok(())
    }

    fn global(&mut self) -> Result<(), String> {
        let module = self.line()?;
        let name = self.line()?;
        self.push_global(module, name)
    }

    fn stack_global(&mut self) -> Result<(), String> {
        let name = self.pop()?;
        let module = self.pop()?;
        let text = |id: NodeId, nodes: &[Node]| match &nodes[id] {
            Node::Str(b) => Ok(String::from_utf8_lossy(b).into_owned()),
            _ => Err("STACK_GLOBAL needs two strings".to_string()),
        };
        let module = text(module, &self.nodes)?;
        let name = text(name, &self.nodes)?;
        self.push_global(module, name)
    }

    fn push_global(&mut self, module: String, name: String) -> Result<(), String> {
        if !is_allowed_global(&module, &name) {
            return Err(format!(
                "global '{module}.{name}' is not allowed in a weights-only checkpoint"
            ));
        }
        self.push(Node::Global { module, name });
        Ok(())
    }

    /// `REDUCE` (`callable(*args)`) or `NEWOBJ` (`cls.__new__(cls, *args)`).
    fn call(&mut self, new_obj: bool) -> Result<(), String> {
        let args = self.pop()?;
        let callable = self.pop()?;
        if !matches!(self.nodes[callable], Node::Global { .. }) {
            return Err("the callable is not a global".to_string());
        }
        if !matches!(self.nodes[args], Node::Tuple(_)) {
            return Err("the arguments are not a tuple".to_string());
        }
        self.push(Node::Object(Object {
            new_obj,
            callable,
            args,
            items: Vec::new(),
            appends: Vec::new(),
            state: None,
        }));
        Ok(())
    }

    fn build(&mut self) -> Result<(), String> {
        let state = self.pop()?;
        let target = self.top()?;
        match &mut self.nodes[target] {
            Node::Object(object) => {
                object.state = Some(state);
                Ok(())
            }
            _ => Err("BUILD on a value that is not an object".to_string()),
        }
    }

    /// `APPEND(S)`, `SETITEM(S)` and `ADDITEMS`: add entries to the container under them.
    fn fill(&mut self, code: u8) -> Result<(), String> {
        let entries = match code {
            op::APPEND | op::SETITEM => {
                let n = if code == op::APPEND { 1 } else { 2 };
                self.pop_n(n)?
            }
            _ => self.pop_mark()?,
        };
        let target = self.top()?;
        match (code, &mut self.nodes[target]) {
            (op::APPEND | op::APPENDS, Node::List(items))
            | (op::APPEND | op::APPENDS, Node::Object(Object { appends: items, .. }))
            | (op::ADDITEMS, Node::Set(items)) => items.extend(entries),
            (op::SETITEM | op::SETITEMS, Node::Dict(items))
            | (op::SETITEM | op::SETITEMS, Node::Object(Object { items, .. })) => {
                items.extend(pairs(entries)?)
            }
            _ => return Err("the target does not take these entries".to_string()),
        }
        Ok(())
    }

    fn put(&mut self, index: impl FnOnce(&mut Self) -> Result<u64, String>) -> Result<(), String> {
        let index = index(self)?;
        let top = self.top()?;
        self.memo.insert(index, top);
        Ok(())
    }

    fn get(&mut self, index: impl FnOnce(&mut Self) -> Result<u64, String>) -> Result<(), String> {
        let index = index(self)?;
        let id = *self
            .memo
            .get(&index)
            .ok_or_else(|| format!("memo entry {index} is not set"))?;
        self.stack.push(id);
        Ok(())
    }

    fn push(&mut self, node: Node) {
        self.nodes.push(node);
        self.stack.push(self.nodes.len() - 1);
    }

    /// The bottom of the current mark frame: values below it may not be popped.
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    fn pop(&mut self) -> Result<NodeId, String> {
        if self.stack.len() <= self.floor() {
            return Err("stack underflow".to_string());
        }
        self.stack
            .pop()
            .ok_or_else(|| "stack underflow".to_string())
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<NodeId>, String> {
        if self.stack.len() < self.floor() + n {
            return Err("stack underflow".to_string());
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    fn top(&self) -> Result<NodeId, String> {
        match self.stack.last() {
            Some(&id) if self.stack.len() > self.floor() => Ok(id),
            _ => Err("stack underflow".to_string()),
        }
    }

    /// `POP`: drops the top value, or the innermost mark when nothing was pushed since it.
    fn pop_or_mark(&mut self) -> Result<(), String> {
        if self.marks.last() == Some(&self.stack.len()) {
            self.marks.pop();
            return Ok(());
        }
        self.pop().map(drop)
    }

    fn pop_mark(&mut self) -> Result<Vec<NodeId>, String> {
        let mark = self.marks.pop().ok_or("no MARK before this opcode")?;
        Ok(self.stack.split_off(mark))
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.input.len())
            .ok_or("the pickle ends early")?;
        let bytes = &self.input[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn sized_u8(&mut self) -> Result<Vec<u8>, String> {
        let n = usize::from(self.take(1)?[0]);
        Ok(self.take(n)?.to_vec())
    }

    fn sized_u32(&mut self) -> Result<Vec<u8>, String> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }

    fn sized_u64(&mut self) -> Result<Vec<u8>, String> {
        let b = self.take(8)?;
        let n = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
        let n = usize::try_from(n).map_err(|_| "the pickle ends early")?;
        Ok(self.take(n)?.to_vec())
    }

    /// A newline-terminated ASCII line (module and name of `GLOBAL`).
    fn line(&mut self) -> Result<String, String> {
        const MAX_LINE: usize = 512;
        let rest = &self.input[self.pos..];
        let len = rest
            .iter()
            .take(MAX_LINE)
            .position(|&b| b == b'\n')
            .ok_or("GLOBAL name is not terminated")?;
        let line = String::from_utf8_lossy(&rest[..len]).into_owned();
        self.pos += len + 1;
        Ok(line)
    }
}

/// A `LONG1`/`LONG4` integer: little-endian two's complement of any width.
fn long(bytes: &[u8]) -> Node {
    if bytes.len() > 8 {
        return Node::BigInt(bytes.to_vec());
    }
    let fill = if bytes.last().is_some_and(|&b| b & 0x80 != 0) {
        0xff
    } else {
        0
    };
    let mut le = [fill; 8];
    le[..bytes.len()].copy_from_slice(bytes);
    Node::Int(i64::from_le_bytes(le))
}

/// Groups a flat key, value, key, value, ... list into pairs.
fn pairs(flat: Vec<NodeId>) -> Result<Vec<(NodeId, NodeId)>, String> {
    if !flat.len().is_multiple_of(2) {
        return Err("a key has no value".to_string());
    }
    Ok(flat.chunks_exact(2).map(|kv| (kv[0], kv[1])).collect())
}

/// How deep [`write`] may nest; [`super::storages`] enforces the same bound on reading.
pub(crate) const MAX_DEPTH: usize = 256;

/// Serializes `graph` from its root as a protocol-2 pickle. Nodes reached more than once are
/// memoized, so shared objects stay shared.
pub(crate) fn write(graph: &Graph) -> Result<Vec<u8>, String> {
    let mut writer = Writer {
        graph,
        out: vec![op::PROTO, 2],
        shared: shared_nodes(graph),
        memo: HashMap::new(),
        open: vec![false; graph.nodes.len()],
    };
    writer.emit(graph.root, 0)?;
    writer.out.push(op::STOP);
    Ok(writer.out)
}

/// The nodes reachable from the root through more than one edge.
fn shared_nodes(graph: &Graph) -> Vec<bool> {
    let mut seen = vec![false; graph.nodes.len()];
    let mut shared = vec![false; graph.nodes.len()];
    let mut todo = vec![graph.root];
    seen[graph.root] = true;
    while let Some(id) = todo.pop() {
        for child in children(graph.node(id)) {
            if seen[child] {
                shared[child] = true;
            } else {
                seen[child] = true;
                todo.push(child);
            }
        }
    }
    shared
}

/// The nodes a node refers to.
fn children(node: &Node) -> Vec<NodeId> {
    match node {
        Node::Tuple(items) | Node::List(items) | Node::Set(items) => items.clone(),
        Node::Dict(items) => items.iter().flat_map(|&(k, v)| [k, v]).collect(),
        Node::Object(o) => {
            let mut ids = vec![o.callable, o.args];
            ids.extend(o.appends.iter().copied());
            ids.extend(o.items.iter().flat_map(|&(k, v)| [k, v]));
            ids.extend(o.state);
            ids
        }
        Node::PersId(arg) => vec![*arg],
        _ => Vec::new(),
    }
}

/// The state of [`write`].
struct Writer<'a> {
    graph: &'a Graph,
    out: Vec<u8>,
    /// Nodes to memoize when first written.
    shared: Vec<bool>,
    /// Memo index of each node written and memoized.
    memo: HashMap<NodeId, u32>,
    /// Nodes being written (to refuse a tuple that contains itself).
    open: Vec<bool>,
}

impl Writer<'_> {
    fn emit(&mut self, id: NodeId, depth: usize) -> Result<(), String> {
        if let Some(&index) = self.memo.get(&id) {
            self.memo_op(op::BINGET, op::LONG_BINGET, index);
            return Ok(());
        }
        if depth > MAX_DEPTH {
            return Err("the object graph is nested too deeply".to_string());
        }
        if self.open[id] {
            return Err("an object contains itself".to_string());
        }
        self.open[id] = true;
        self.emit_node(id, depth + 1)?;
        self.open[id] = false;
        if !self.memo.contains_key(&id) {
            self.memoize(id);
        }
        Ok(())
    }

    fn emit_node(&mut self, id: NodeId, depth: usize) -> Result<(), String> {
        match self.graph.node(id) {
            Node::None => self.out.push(op::NONE),
            Node::Bool(b) => self.out.push(if *b { op::NEWTRUE } else { op::NEWFALSE }),
            Node::Int(v) => self.int(*v),
            Node::BigInt(bytes) => self.sized(op::LONG1, op::LONG4, bytes),
            Node::Float(v) => {
                self.out.push(op::BINFLOAT);
                self.out.extend_from_slice(&v.to_be_bytes());
            }
            Node::Str(bytes) => self.sized_u32(op::BINUNICODE, bytes)?,
            Node::ByteString(bytes) => self.sized(op::SHORT_BINSTRING, op::BINSTRING, bytes),
            Node::Bytes(bytes) => self.sized(op::SHORT_BINBYTES, op::BINBYTES, bytes),
            Node::Global { module, name } => {
                self.out.push(op::GLOBAL);
                for part in [module, name] {
                    self.out.extend_from_slice(part.as_bytes());
                    self.out.push(b'\n');
                }
            }
            Node::Tuple(items) => self.tuple(items, depth)?,
            Node::List(items) => self.container(id, op::EMPTY_LIST, items, op::APPENDS, depth)?,
            Node::Set(items) => self.container(id, op::EMPTY_SET, items, op::ADDITEMS, depth)?,
            Node::Dict(items) => {
                let flat: Vec<NodeId> = items.iter().flat_map(|&(k, v)| [k, v]).collect();
                self.container(id, op::EMPTY_DICT, &flat, op::SETITEMS, depth)?
            }
            Node::Object(object) => self.object(id, object, depth)?,
            Node::PersId(arg) => {
                self.emit(*arg, depth)?;
                self.out.push(op::BINPERSID);
            }
        }
        Ok(())
    }

    fn tuple(&mut self, items: &[NodeId], depth: usize) -> Result<(), String> {
        if items.is_empty() {
            self.out.push(op::EMPTY_TUPLE);
            return Ok(());
        }
        self.out.push(op::MARK);
        for &item in items {
            self.emit(item, depth)?;
        }
        self.out.push(op::TUPLE);
        Ok(())
    }

    /// A mutable container: created empty and memoized first, so it may contain itself.
    fn container(
        &mut self,
        id: NodeId,
        empty: u8,
        flat: &[NodeId],
        fill: u8,
        depth: usize,
    ) -> Result<(), String> {
        self.out.push(empty);
        self.memoize(id);
        self.open[id] = false;
        self.batch(flat, fill, depth)
    }

    fn object(&mut self, id: NodeId, object: &Object, depth: usize) -> Result<(), String> {
        self.emit(object.callable, depth)?;
        self.emit(object.args, depth)?;
        self.out.push(if object.new_obj {
            op::NEWOBJ
        } else {
            op::REDUCE
        });
        self.memoize(id);
        self.open[id] = false;
        self.batch(&object.appends, op::APPENDS, depth)?;
        let flat: Vec<NodeId> = object.items.iter().flat_map(|&(k, v)| [k, v]).collect();
        self.batch(&flat, op::SETITEMS, depth)?;
        if let Some(state) = object.state {
            self.emit(state, depth)?;
            self.out.push(op::BUILD);
        }
        Ok(())
    }

    /// `MARK`, the entries, then the opcode that adds them (nothing when there are none).
    fn batch(&mut self, flat: &[NodeId], fill: u8, depth: usize) -> Result<(), String> {
        if flat.is_empty() {
            return Ok(());
        }
        self.out.push(op::MARK);
        for &item in flat {
            self.emit(item, depth)?;
        }
        self.out.push(fill);
        Ok(())
    }

    /// Stores the value on top of the stack in the memo if it is reached more than once.
    fn memoize(&mut self, id: NodeId) {
        if !self.shared[id] || self.memo.contains_key(&id) {
            return;
        }
        let index = self.memo.len() as u32;
        self.memo.insert(id, index);
        self.memo_op(op::BINPUT, op::LONG_BINPUT, index);
    }

    fn memo_op(&mut self, short: u8, long: u8, index: u32) {
        match u8::try_from(index) {
            Ok(small) => self.out.extend_from_slice(&[short, small]),
            Err(_) => {
                self.out.push(long);
                self.out.extend_from_slice(&index.to_le_bytes());
            }
        }
    }

    fn int(&mut self, v: i64) {
        if let Ok(small) = u8::try_from(v) {
            self.out.extend_from_slice(&[op::BININT1, small]);
        } else if let Ok(medium) = u16::try_from(v) {
            self.out.push(op::BININT2);
            self.out.extend_from_slice(&medium.to_le_bytes());
        } else if let Ok(word) = i32::try_from(v) {
            self.out.push(op::BININT);
            self.out.extend_from_slice(&word.to_le_bytes());
        } else {
            let bytes = v.to_le_bytes();
            self.out.extend_from_slice(&[op::LONG1, 8]);
            self.out.extend_from_slice(&bytes);
        }
    }

    /// An opcode with a one-byte length when the payload fits, else a four-byte one.
    fn sized(&mut self, short: u8, long: u8, bytes: &[u8]) {
        match u8::try_from(bytes.len()) {
            Ok(n) => self.out.extend_from_slice(&[short, n]),
            Err(_) => {
                self.out.push(long);
                self.out
                    .extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            }
        }
        self.out.extend_from_slice(bytes);
    }

    fn sized_u32(&mut self, code: u8, bytes: &[u8]) -> Result<(), String> {
        let n = u32::try_from(bytes.len()).map_err(|_| "a string is over 4 GiB")?;
        self.out.push(code);
        self.out.extend_from_slice(&n.to_le_bytes());
        self.out.extend_from_slice(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ordered_dict_with_a_tensor_round_trips() {
        let pickle = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(X\x01\x00\x00\x00aq\x02\
ctorch._utils\n_rebuild_tensor_v2\nq\x03((X\x07\x00\x00\x00storageq\x04ctorch\nFloatStorage\n\
q\x05X\x01\x00\x00\x000q\x06X\x03\x00\x00\x00cpuq\x07K\x02tq\x08QK\x00K\x02\x85K\x01\x85\x89h\x00)Rtq\tRu.";
        let (graph, end) = parse(pickle).expect("parses");
        assert_eq!(end, pickle.len());
        let again = write(&graph).expect("writes");
        let (reparsed, _) = parse(&again).expect("reparses");
        assert_eq!(write(&reparsed).expect("writes"), again);
        assert!(matches!(graph.node(graph.root), Node::Object(o) if o.items.len() == 1));
    }

    #[test]
    fn unknown_global_is_refused() {
        let err = parse(b"\x80\x02cos\nsystem\n.").unwrap_err();
        assert!(err.contains("os.system"), "{err}");
    }

    #[test]
    fn long_ints_sign_extend() {
        assert_eq!(long(&[0xff]), Node::Int(-1));
        assert_eq!(long(&[0x00, 0x80]), Node::Int(-32768));
        assert_eq!(long(&[]), Node::Int(0));
    }

    #[test]
    fn ints_round_trip_through_the_writer() {
        for v in [
            0,
            255,
            256,
            65535,
            65536,
            -1,
            i32::MIN as i64,
            i64::MAX,
            i64::MIN,
        ] {
            let graph = Graph {
                nodes: vec![Node::Int(v)],
                root: 0,
            };
            let (back, _) = parse(&write(&graph).expect("writes")).expect("parses");
            assert_eq!(back.node(back.root), &Node::Int(v));
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn parse_never_panics_on_mutated_pickles(
            at in 0usize..200,
            byte in any::<u8>(),
            cut in 0usize..200,
        ) {
            let mut pickle = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01]q\x02(K\x01G?\xf0\x00\x00\x00\x00\x00\x00eh\x02\x86u.".to_vec();
            let at = at % pickle.len();
            pickle[at] = byte;
            pickle.truncate(cut.max(1));
            if let Ok((graph, _)) = parse(&pickle) {
                let _ = write(&graph);
            }
        }
    }
}
