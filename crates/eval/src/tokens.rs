//! Tokenized sentences for a sentence-embedding network, read from an npz file.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use npyz::npz::NpzArchive;

use crate::network::InputData;
use crate::EvalError;

/// Token ids of sentences (one row of `seq_len` ids each) with their attention masks and token
/// types, plus optionally the reference embedding the original network gives them.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSet {
    input_ids: Vec<i64>,
    attention_mask: Vec<i64>,
    token_type_ids: Vec<i64>,
    rows: usize,
    seq_len: usize,
    reference: Option<Embeddings>,
}

/// A row-major matrix of embeddings, one row per sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl TokenSet {
    /// Reads `input_ids`, `attention_mask` and `token_type_ids` (int64, [N, L], all of the same
    /// shape) and, when present, `reference_embedding` (float32, [N, D]) from an npz file.
    pub fn load(path: &Path) -> Result<TokenSet, EvalError> {
        let file = File::open(path).map_err(|source| EvalError::io(path, source))?;
        let mut archive = NpzArchive::new(BufReader::new(file))
            .map_err(|e| EvalError::npz(path, e.to_string()))?;
        let (input_ids, shape) = read_i64(&mut archive, path, "input_ids")?;
        let (attention_mask, mask_shape) = read_i64(&mut archive, path, "attention_mask")?;
        let (token_type_ids, type_shape) = read_i64(&mut archive, path, "token_type_ids")?;
        if mask_shape != shape || type_shape != shape || shape.len() != 2 {
            return Err(EvalError::npz(
                path,
                format!("token arrays must share one [N, L] shape: input_ids {shape:?}, attention_mask {mask_shape:?}, token_type_ids {type_shape:?}"),
            ));
        }
        let reference = read_reference(&mut archive, path, shape[0])?;
        Ok(TokenSet {
            input_ids,
            attention_mask,
            token_type_ids,
            rows: shape[0],
            seq_len: shape[1],
            reference,
        })
    }

    /// Keeps only the first `limit` sentences.
    pub fn truncate(&mut self, limit: usize) {
        let rows = self.rows.min(limit);
        let values = rows * self.seq_len;
        self.input_ids.truncate(values);
        self.attention_mask.truncate(values);
        self.token_type_ids.truncate(values);
        if let Some(reference) = &mut self.reference {
            reference.data.truncate(rows * reference.cols);
            reference.rows = rows;
        }
        self.rows = rows;
    }

    /// Splits the set into two disjoint halves by position: sentences 0, 2, 4, ... and
    /// sentences 1, 3, 5, ... `pwlc tune` calibrates on the first and reports on the second.
    pub fn split_alternating(&self) -> (TokenSet, TokenSet) {
        (self.every_other(0), self.every_other(1))
    }

    /// The sentences at positions `first`, `first + 2`, ...
    fn every_other(&self, first: usize) -> TokenSet {
        let positions: Vec<usize> = (first..self.rows).step_by(2).collect();
        let pick = |values: &[i64], width: usize| -> Vec<i64> {
            positions
                .iter()
                .flat_map(|&i| values[i * width..(i + 1) * width].iter().copied())
                .collect()
        };
        let reference = self.reference.as_ref().map(|r| Embeddings {
            rows: positions.len(),
            cols: r.cols,
            data: positions
                .iter()
                .flat_map(|&i| r.data[i * r.cols..(i + 1) * r.cols].iter().copied())
                .collect(),
        });
        TokenSet {
            input_ids: pick(&self.input_ids, self.seq_len),
            attention_mask: pick(&self.attention_mask, self.seq_len),
            token_type_ids: pick(&self.token_type_ids, self.seq_len),
            rows: positions.len(),
            seq_len: self.seq_len,
            reference,
        }
    }

    /// Number of sentences.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when there are no sentences.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Number of tokens per sentence.
    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// The reference embedding stored with the tokens, if any.
    pub fn reference(&self) -> Option<&Embeddings> {
        self.reference.as_ref()
    }

    /// The token array a network input of this name takes, if any.
    pub(crate) fn input(&self, name: &str) -> Option<InputData<'_>> {
        match name {
            "input_ids" => Some(InputData::I64(&self.input_ids)),
            "attention_mask" => Some(InputData::I64(&self.attention_mask)),
            "token_type_ids" => Some(InputData::I64(&self.token_type_ids)),
            _ => None,
        }
    }
}

/// An int64 array of the archive with its shape.
fn read_i64(
    archive: &mut NpzArchive<BufReader<File>>,
    path: &Path,
    name: &str,
) -> Result<(Vec<i64>, Vec<usize>), EvalError> {
    let array = archive
        .by_name(name)
        .map_err(|e| EvalError::npz(path, format!("array {name}: {e}")))?
        .ok_or_else(|| EvalError::npz(path, format!("has no array {name}")))?;
    let shape = c_order_shape(&array, path, name)?;
    let values = array
        .into_vec::<i64>()
        .map_err(|e| EvalError::npz(path, format!("array {name} is not int64: {e}")))?;
    Ok((values, shape))
}

/// The optional `reference_embedding` array, a float32 matrix of `rows` rows.
fn read_reference(
    archive: &mut NpzArchive<BufReader<File>>,
    path: &Path,
    rows: usize,
) -> Result<Option<Embeddings>, EvalError> {
    const NAME: &str = "reference_embedding";
    let Some(array) = archive
        .by_name(NAME)
        .map_err(|e| EvalError::npz(path, format!("array {NAME}: {e}")))?
    else {
        return Ok(None);
    };
    let shape = c_order_shape(&array, path, NAME)?;
    if shape.len() != 2 || shape[0] != rows {
        return Err(EvalError::npz(
            path,
            format!("array {NAME} has shape {shape:?}, expected [{rows}, D]"),
        ));
    }
    let data = array
        .into_vec::<f32>()
        .map_err(|e| EvalError::npz(path, format!("array {NAME} is not float32: {e}")))?;
    Ok(Some(Embeddings {
        rows,
        cols: shape[1],
        data,
    }))
}

/// The shape of a row-major array (Fortran order is rejected).
fn c_order_shape<R: std::io::Read>(
    array: &npyz::NpyFile<R>,
    path: &Path,
    name: &str,
) -> Result<Vec<usize>, EvalError> {
    if array.order() != npyz::Order::C {
        return Err(EvalError::npz(
            path,
            format!("array {name} is in Fortran order"),
        ));
    }
    array
        .shape()
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| EvalError::npz(path, format!("array {name} is too large")))
}
