//! An ONNX network run by tract, optionally with some initializers replaced.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pwlc_models::{DType, Tensor};
use tract_linalg::multithread::Executor;
use tract_onnx::pb;
use tract_onnx::pb::tensor_proto::{DataLocation, DataType};
use tract_onnx::prelude::{
    Datum, DatumType, Framework, InferenceFact, InferenceModelExt, IntoTValue, RunOptions, TValue,
    TVec, TypedModel, TypedRunnableModel,
};

use crate::EvalError;

/// Batch size of [`Network::from_onnx`]: the number of items one inference runs on.
pub const DEFAULT_BATCH: usize = 8;

/// Element type of a network input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    F32,
    I64,
}

/// One input of a network: its name, element type and the shape of one item (without the
/// leading batch dimension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    pub name: String,
    pub kind: InputKind,
    pub item_shape: Vec<usize>,
}

impl InputSpec {
    /// Number of values of one item.
    pub fn item_len(&self) -> usize {
        self.item_shape.iter().product()
    }
}

/// The values of one input for a run of several items, one item after another.
#[derive(Debug, Clone, Copy)]
pub enum InputData<'a> {
    F32(&'a [f32]),
    I64(&'a [i64]),
}

impl InputData<'_> {
    fn len(&self) -> usize {
        match self {
            InputData::F32(values) => values.len(),
            InputData::I64(values) => values.len(),
        }
    }

    /// Items `range` of values holding `item_len` values per item.
    pub(crate) fn items(&self, range: std::ops::Range<usize>, item_len: usize) -> Self {
        let values = range.start * item_len..range.end * item_len;
        match self {
            InputData::F32(all) => InputData::F32(&all[values]),
            InputData::I64(all) => InputData::I64(&all[values]),
        }
    }

    fn kind(&self) -> InputKind {
        match self {
            InputData::F32(_) => InputKind::F32,
            InputData::I64(_) => InputKind::I64,
        }
    }
}

/// The first output of a run: one row of `cols` values per item.
#[derive(Debug, Clone, PartialEq)]
pub struct Outputs {
    pub rows: usize,
    pub cols: usize,
    /// Row-major values, `rows * cols` of them.
    pub data: Vec<f32>,
}

impl Outputs {
    /// No rows of `cols` values.
    pub(crate) fn empty(cols: usize) -> Outputs {
        Outputs {
            rows: 0,
            cols,
            data: Vec::new(),
        }
    }

    /// Appends the rows of `more`, which has the same number of columns.
    pub(crate) fn append(&mut self, more: Outputs) {
        self.rows += more.rows;
        self.data.extend(more.data);
    }

    /// The output of item `row` (panics when `row >= rows`, as slice indexing does).
    pub fn row(&self, row: usize) -> &[f32] {
        &self.data[row * self.cols..(row + 1) * self.cols]
    }
}

/// An ONNX network whose inputs have a leading batch dimension and whose first output is `f32`
/// with one row per item, optimized by tract for a fixed batch size. Matrix products use all
/// threads of rayon's global pool.
#[derive(Debug, Clone)]
pub struct Network {
    path: PathBuf,
    plan: Arc<TypedRunnableModel>,
    batch: usize,
    inputs: Vec<InputSpec>,
    output_len: usize,
}

impl Network {
    /// Loads the ONNX file at `path` for batches of [`DEFAULT_BATCH`]. When `replacement` is
    /// given, each of its tensors replaces the value of the initializer of the same name (in
    /// memory; the file is not touched); a tensor whose name, shape or dtype matches no
    /// initializer is an error.
    pub fn from_onnx(path: &Path, replacement: Option<&[Tensor]>) -> Result<Network, EvalError> {
        Network::from_onnx_with_batch(path, replacement, DEFAULT_BATCH)
    }

    /// As [`Network::from_onnx`], optimized for batches of `batch` items (at least 1).
    pub fn from_onnx_with_batch(
        path: &Path,
        replacement: Option<&[Tensor]>,
        batch: usize,
    ) -> Result<Network, EvalError> {
        let batch = batch.max(1);
        let onnx = tract_onnx::onnx();
        let mut proto = onnx
            .proto_model_for_path(path)
            .map_err(|e| EvalError::onnx(path, e))?;
        if let Some(tensors) = replacement {
            replace_initializers(&mut proto, tensors)?;
        }
        let inputs = input_specs(&proto, path)?;
        let typed = optimize(&onnx, &proto, path, &inputs, batch)?;
        let output_len = output_len(&typed, batch).map_err(|e| EvalError::onnx(path, e))?;
        // Matrix products split over rayon's global pool, shared with the rest of the crate.
        let options = RunOptions {
            executor: Some(Executor::RayonGlobal),
            ..RunOptions::default()
        };
        let plan = typed
            .into_runnable_with_options(&options)
            .map_err(|e| EvalError::onnx(path, e))?;
        Ok(Network {
            path: path.to_path_buf(),
            plan,
            batch,
            inputs,
            output_len,
        })
    }

    /// The ONNX file the network was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The inputs, in the order [`Network::run`] takes them.
    pub fn inputs(&self) -> &[InputSpec] {
        &self.inputs
    }

    /// Number of items one inference runs on.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Number of values of the first output per item.
    pub fn output_len(&self) -> usize {
        self.output_len
    }

    /// Runs the network on any number of items, given as one [`InputData`] per input (in the
    /// order of [`Network::inputs`]) holding the same number of items each. Items run in
    /// batches of [`Network::batch`]; the last batch is padded with zeros, whose outputs are
    /// dropped.
    pub fn run(&self, inputs: &[InputData]) -> Result<Outputs, EvalError> {
        let items = self.count_items(inputs)?;
        let mut data = Vec::with_capacity(items * self.output_len);
        for start in (0..items).step_by(self.batch) {
            let end = (start + self.batch).min(items);
            self.run_batch(inputs, start..end, &mut data)?;
        }
        Ok(Outputs {
            rows: items,
            cols: self.output_len,
            data,
        })
    }

    /// Runs items `range` (at most one batch) and appends their outputs to `out`.
    fn run_batch(
        &self,
        inputs: &[InputData],
        range: std::ops::Range<usize>,
        out: &mut Vec<f32>,
    ) -> Result<(), EvalError> {
        let tensors = self
            .inputs
            .iter()
            .zip(inputs)
            .map(|(spec, data)| self.padded_batch(spec, data, range.clone()))
            .collect::<Result<TVec<TValue>, _>>()
            .map_err(|e| EvalError::onnx(&self.path, e))?;
        let outputs = self
            .plan
            .run(tensors)
            .map_err(|e| EvalError::onnx(&self.path, e))?;
        let first = outputs
            .first()
            .ok_or_else(|| EvalError::onnx(&self.path, "the network has no output"))?;
        let values = first
            .try_as_plain_ram()
            .and_then(|view| view.as_slice::<f32>())
            .map_err(|e| EvalError::onnx(&self.path, e))?;
        let wanted = range.len() * self.output_len;
        let rows = values.get(..wanted).ok_or_else(|| {
            EvalError::onnx(
                &self.path,
                format!("output has {} values, expected {wanted}", values.len()),
            )
        })?;
        out.extend_from_slice(rows);
        Ok(())
    }

    /// Items `range` of one input as a full batch tensor, zero-padded.
    fn padded_batch(
        &self,
        spec: &InputSpec,
        data: &InputData,
        range: std::ops::Range<usize>,
    ) -> tract_onnx::prelude::TractResult<TValue> {
        let item_len = spec.item_len();
        let shape: Vec<usize> = std::iter::once(self.batch)
            .chain(spec.item_shape.iter().copied())
            .collect();
        let values = range.start * item_len..range.end * item_len;
        let tensor = match data {
            InputData::F32(all) => padded_tensor(&shape, &all[values])?,
            InputData::I64(all) => padded_tensor(&shape, &all[values])?,
        };
        Ok(tensor.into_tvalue())
    }

    /// Checks the inputs against the network's and returns their common number of items.
    pub(crate) fn count_items(&self, inputs: &[InputData]) -> Result<usize, EvalError> {
        if inputs.len() != self.inputs.len() {
            return Err(EvalError::Input(format!(
                "{} takes {} inputs, got {}",
                self.path.display(),
                self.inputs.len(),
                inputs.len()
            )));
        }
        let mut items = None;
        for (spec, data) in self.inputs.iter().zip(inputs) {
            let count = items_of(spec, data)?;
            if items.is_some_and(|n| n != count) {
                return Err(EvalError::Input(format!(
                    "input {:?} holds {count} items, the inputs before it {}",
                    spec.name,
                    items.unwrap_or_default()
                )));
            }
            items = Some(count);
        }
        Ok(items.unwrap_or(0))
    }
}

/// The number of items `data` holds for input `spec`, checking its type and length.
fn items_of(spec: &InputSpec, data: &InputData) -> Result<usize, EvalError> {
    if data.kind() != spec.kind {
        return Err(EvalError::Input(format!(
            "input {:?} is {:?}, got {:?} values",
            spec.name,
            spec.kind,
            data.kind()
        )));
    }
    let item_len = spec.item_len();
    if item_len == 0 || !data.len().is_multiple_of(item_len) {
        return Err(EvalError::Input(format!(
            "input {:?} takes items of {item_len} values, got {} values",
            spec.name,
            data.len()
        )));
    }
    Ok(data.len() / item_len)
}

/// A tensor of `shape` starting with `values`, the rest zeros.
fn padded_tensor<T: Datum + Copy + Default>(
    shape: &[usize],
    values: &[T],
) -> tract_onnx::prelude::TractResult<tract_onnx::prelude::Tensor> {
    let mut padded = vec![T::default(); shape.iter().product()];
    padded[..values.len()].copy_from_slice(values);
    tract_onnx::prelude::Tensor::from_shape(shape, &padded)
}

/// Translates `proto` (loaded from `path`) into a tract model with the inputs fixed to
/// `batch` items and optimizes it.
fn optimize(
    onnx: &tract_onnx::Onnx,
    proto: &pb::ModelProto,
    path: &Path,
    inputs: &[InputSpec],
    batch: usize,
) -> Result<TypedModel, EvalError> {
    let dir = path.parent().and_then(Path::to_str);
    let parsed = onnx
        .parse(proto, dir)
        .map_err(|e| EvalError::onnx(path, e))?;
    if !parsed.unresolved_inputs.is_empty() {
        return Err(EvalError::onnx(
            path,
            format!("unresolved inputs {:?}", parsed.unresolved_inputs),
        ));
    }
    let mut model = parsed.model;
    for (index, spec) in inputs.iter().enumerate() {
        let shape: Vec<usize> = std::iter::once(batch)
            .chain(spec.item_shape.iter().copied())
            .collect();
        let datum = match spec.kind {
            InputKind::F32 => DatumType::F32,
            InputKind::I64 => DatumType::I64,
        };
        model = model
            .with_input_fact(index, InferenceFact::dt_shape(datum, shape))
            .map_err(|e| EvalError::onnx(path, e))?;
    }
    model.into_optimized().map_err(|e| EvalError::onnx(path, e))
}

/// Values per item of the first output of `model`, checking it is `f32` with `batch` rows.
fn output_len(model: &TypedModel, batch: usize) -> Result<usize, String> {
    let fact = model.output_fact(0).map_err(|e| format!("{e:#}"))?;
    if fact.datum_type != DatumType::F32 {
        return Err(format!(
            "first output is {:?}, expected f32",
            fact.datum_type
        ));
    }
    let shape = fact
        .shape
        .as_concrete()
        .ok_or_else(|| format!("first output shape {:?} is not fixed", fact.shape))?;
    match shape.split_first() {
        Some((&rows, item)) if rows == batch => Ok(item.iter().product()),
        _ => Err(format!(
            "first output shape {shape:?} does not start with the batch size {batch}"
        )),
    }
}

/// The graph inputs that are not initializers, with their element type and item shape: the
/// first dimension is the batch (any size), the others must be fixed.
fn input_specs(proto: &pb::ModelProto, path: &Path) -> Result<Vec<InputSpec>, EvalError> {
    let graph = proto
        .graph
        .as_ref()
        .ok_or_else(|| EvalError::onnx(path, "the model has no graph"))?;
    let initializers: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    graph
        .input
        .iter()
        .filter(|input| !initializers.contains(input.name.as_str()))
        .map(|input| input_spec(input).map_err(|message| EvalError::onnx(path, message)))
        .collect()
}

/// The [`InputSpec`] of one graph input, or why it is not supported.
fn input_spec(input: &pb::ValueInfoProto) -> Result<InputSpec, String> {
    use pb::type_proto::Value;
    let Some(Value::TensorType(tensor)) = input.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(format!("input {:?} is not a tensor", input.name));
    };
    let kind = match DataType::try_from(tensor.elem_type) {
        Ok(DataType::Float) => InputKind::F32,
        Ok(DataType::Int64) => InputKind::I64,
        _ => {
            return Err(format!(
                "input {:?} has element type {}; only float and int64 inputs are supported",
                input.name, tensor.elem_type
            ))
        }
    };
    let dims = tensor
        .shape
        .as_ref()
        .map(|s| s.dim.as_slice())
        .unwrap_or(&[]);
    let item_shape = dims
        .iter()
        .skip(1)
        .map(|dim| {
            fixed_dim(dim).ok_or_else(|| {
                format!(
                    "input {:?} has a dynamic dimension besides the batch",
                    input.name
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if dims.is_empty() {
        return Err(format!("input {:?} has no batch dimension", input.name));
    }
    Ok(InputSpec {
        name: input.name.clone(),
        kind,
        item_shape,
    })
}

/// The size of a fixed dimension.
fn fixed_dim(dim: &pb::tensor_shape_proto::Dimension) -> Option<usize> {
    use pb::tensor_shape_proto::dimension::Value;
    match dim.value {
        Some(Value::DimValue(size)) => usize::try_from(size).ok(),
        _ => None,
    }
}

/// Overwrites the values of the initializers named by `tensors`.
fn replace_initializers(proto: &mut pb::ModelProto, tensors: &[Tensor]) -> Result<(), EvalError> {
    let Some(graph) = proto.graph.as_mut() else {
        return Err(replacement_error(
            tensors.first().map_or("", |t| t.name.as_str()),
            "the model has no graph",
        ));
    };
    let index: HashMap<String, usize> = graph
        .initializer
        .iter()
        .enumerate()
        .map(|(position, init)| (init.name.clone(), position))
        .collect();
    for tensor in tensors {
        let position = index.get(&tensor.name).ok_or_else(|| {
            replacement_error(&tensor.name, "the model has no initializer of that name")
        })?;
        overwrite_initializer(&mut graph.initializer[*position], tensor)?;
    }
    Ok(())
}

/// Replaces the stored values of `init` by those of `tensor`, which must have its shape and
/// element type.
fn overwrite_initializer(init: &mut pb::TensorProto, tensor: &Tensor) -> Result<(), EvalError> {
    let dims: Vec<u64> = init
        .dims
        .iter()
        .map(|&d| u64::try_from(d).unwrap_or(u64::MAX))
        .collect();
    if dims != tensor.shape {
        return Err(replacement_error(
            &tensor.name,
            &format!(
                "shape {:?} differs from the initializer's {dims:?}",
                tensor.shape
            ),
        ));
    }
    let expected = onnx_data_type(tensor.dtype);
    if expected.map(|t| t as i32) != Some(init.data_type) {
        return Err(replacement_error(
            &tensor.name,
            &format!(
                "dtype {} differs from the initializer's ONNX data type {}",
                tensor.dtype.name(),
                init.data_type
            ),
        ));
    }
    let byte_len = tensor
        .element_count()
        .saturating_mul(tensor.dtype.size() as u64);
    if tensor.data.len() as u64 != byte_len {
        return Err(replacement_error(
            &tensor.name,
            &format!(
                "holds {} bytes, its shape and dtype need {byte_len}",
                tensor.data.len()
            ),
        ));
    }
    clear_values(init);
    init.raw_data = tensor.data.to_vec();
    Ok(())
}

/// Removes every stored value of `init`, typed, raw or external.
fn clear_values(init: &mut pb::TensorProto) {
    init.float_data.clear();
    init.int32_data.clear();
    init.int64_data.clear();
    init.double_data.clear();
    init.uint64_data.clear();
    init.string_data.clear();
    init.external_data.clear();
    init.data_location = Some(DataLocation::Default as i32);
}

/// The ONNX data type of a dtype (`None` for opaque bytes).
fn onnx_data_type(dtype: DType) -> Option<DataType> {
    Some(match dtype {
        DType::F32 => DataType::Float,
        DType::F16 => DataType::Float16,
        DType::BF16 => DataType::Bfloat16,
        DType::F64 => DataType::Double,
        DType::I8 => DataType::Int8,
        DType::I16 => DataType::Int16,
        DType::I32 => DataType::Int32,
        DType::I64 => DataType::Int64,
        DType::U8 => DataType::Uint8,
        DType::U16 => DataType::Uint16,
        DType::U32 => DataType::Uint32,
        DType::U64 => DataType::Uint64,
        DType::Bool => DataType::Bool,
        DType::Opaque => return None,
    })
}

/// An [`EvalError::Replacement`].
fn replacement_error(name: &str, reason: &str) -> EvalError {
    EvalError::Replacement {
        name: name.to_string(),
        reason: reason.to_string(),
    }
}
