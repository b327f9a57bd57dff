//! Matrix encodings compared in the thesis (its section 5.4): COO, CSR, and the CER and CSER
//! formats of Wiedemann, Müller and Samek ("Compact and Computationally Efficient
//! Representation of Deep Neural Networks", IEEE TNNLS 2020).
//!
//! Every format has a real encoder and an exact decoder; [`size`] gives the exact size of an
//! encoding without building it (CER on dense float matrices would not fit in memory). Arrays are bit-packed at the smallest
//! width that holds their largest entry (the width is stored in 6 bits before each array), so
//! [`Encoded::bytes`] is a fair size for each format on the same matrix. Elements are `f32`
//! (compared by bit pattern, so `-0.0` and NaN payloads round-trip) or integer codes (`i32`,
//! e.g. the indices of a quantizer).
//!
//! - COO: the non-zeros' row indices, column indices and values.
//! - CSR: row pointers, then the non-zeros' column indices and values.
//! - CER: the distinct values `Ω` sorted by frequency (the most frequent one, `Ω[0]`, is the
//!   background and never listed); per row, for `k = 1, 2, ...` up to the last value present
//!   in the row, a group of the columns holding `Ω[k]` (empty groups included); `ΩPtr` gives
//!   each group's start in the column array and `rowPtr` each row's first group.
//! - CSER: as CER, but only non-empty groups are stored, each with its value index `ΩI`.

mod cer;
mod csr;
mod size;

pub use size::size;

use crate::bitio::{BitReader, BitWriter, ByteReader, PutBytes};
use crate::entropy::huffman::bits_for;
use crate::CodecError;
use std::collections::HashMap;

/// A matrix element that the encodings can store exactly.
pub trait Element: Copy + PartialEq + std::fmt::Debug {
    /// A non-negative integer identifying the element exactly; 0 is the zero element.
    fn code(self) -> u64;
    /// Inverse of [`Element::code`]; `None` if `code` is no element.
    fn from_code(code: u64) -> Option<Self>;
}

impl Element for f32 {
    fn code(self) -> u64 {
        self.to_bits() as u64
    }
    fn from_code(code: u64) -> Option<Self> {
        u32::try_from(code).ok().map(f32::from_bits)
    }
}

impl Element for i32 {
    fn code(self) -> u64 {
        ((self << 1) ^ (self >> 31)) as u32 as u64
    }
    fn from_code(code: u64) -> Option<Self> {
        let u = u32::try_from(code).ok()?;
        Some(((u >> 1) as i32) ^ -((u & 1) as i32))
    }
}

/// A dense row-major matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix<E> {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// `rows * cols` elements, row-major.
    pub data: Vec<E>,
}

impl<E: Element> Matrix<E> {
    /// A matrix over `data`; errors if `data` does not hold `rows * cols` elements.
    pub fn new(rows: usize, cols: usize, data: Vec<E>) -> Result<Self, CodecError> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(CodecError::InvalidParameter(format!(
                "{} elements do not form a {rows} x {cols} matrix",
                data.len()
            )));
        }
        Ok(Matrix { rows, cols, data })
    }

    fn row(&self, r: usize) -> &[E] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }
}

/// A matrix encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Coordinate list.
    Coo,
    /// Compressed sparse row.
    Csr,
    /// Compressed entropy row.
    Cer,
    /// Compressed shared elements row.
    Cser,
}

impl Format {
    /// All formats, in the order of the thesis' comparison.
    pub const ALL: [Format; 4] = [Format::Coo, Format::Csr, Format::Cer, Format::Cser];

    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Coo => "COO",
            Format::Csr => "CSR",
            Format::Cer => "CER",
            Format::Cser => "CSER",
        }
    }
}

/// An encoded matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// The format of `data`.
    pub format: Format,
    /// The encoding.
    pub data: Vec<u8>,
}

impl Encoded {
    /// Size of the encoding in bytes.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }
}

/// Encodes `m` in `format`.
pub fn encode<E: Element>(m: &Matrix<E>, format: Format) -> Encoded {
    let mut data = Vec::new();
    let mut w = BitWriter::new();
    match format {
        Format::Coo => csr::put_coo(m, &mut data, &mut w),
        Format::Csr => csr::put_csr(m, &mut data, &mut w),
        Format::Cer => cer::put(m, false, &mut data, &mut w),
        Format::Cser => cer::put(m, true, &mut data, &mut w),
    }
    data.extend_from_slice(&w.finish());
    Encoded { format, data }
}

/// Decodes a `rows x cols` matrix written by [`encode`] in `format`.
pub fn decode<E: Element>(
    bytes: &[u8],
    format: Format,
    rows: usize,
    cols: usize,
) -> Result<Matrix<E>, CodecError> {
    let total = rows
        .checked_mul(cols)
        .ok_or(CodecError::TooLarge(u64::MAX))?;
    let mut header = ByteReader::new(bytes);
    // Counts of values and cells are bounded by the matrix; CER's group count by the payload,
    // since each group costs at least one bit of its pointer (see `cer::get`).
    let limits = [total, bytes.len().saturating_mul(8), total];
    let counts: Vec<usize> = limits[..count_fields(format)]
        .iter()
        .map(|&limit| header.varint_max(limit as u64))
        .collect::<Result<_, _>>()?;
    let mut r = BitReader::new(header.rest());
    let dims = Dims { rows, cols };
    match format {
        Format::Coo => csr::get_coo(&mut r, dims, counts[0]),
        Format::Csr => csr::get_csr(&mut r, dims, counts[0]),
        Format::Cer => cer::get(&mut r, dims, &counts, false),
        Format::Cser => cer::get(&mut r, dims, &counts, true),
    }
}

/// Number of varint counts in the byte header of `format`.
fn count_fields(format: Format) -> usize {
    match format {
        Format::Coo | Format::Csr => 1,
        Format::Cer | Format::Cser => 3,
    }
}

/// The shape a decoder was asked for.
#[derive(Debug, Clone, Copy)]
struct Dims {
    rows: usize,
    cols: usize,
}

fn put_counts(out: &mut Vec<u8>, counts: &[usize]) {
    counts.iter().for_each(|&c| out.put_varint(c as u64));
}

/// Writes an array at the smallest width holding its entries (width first, in 6 bits).
fn put_array(w: &mut BitWriter, values: impl Iterator<Item = u64> + Clone) {
    let width = bits_for(values.clone().max().unwrap_or(0));
    w.write(width as u64, 6);
    values.for_each(|v| w.write(v, width));
}

/// Reads `count` entries written by [`put_array`], each below `limit`.
fn get_array(r: &mut BitReader<'_>, count: usize, limit: u64) -> Result<Vec<u64>, CodecError> {
    let width = r.read(6)? as u32;
    if width > 57 {
        return Err(CodecError::Corrupt("matrix array width above 57 bits"));
    }
    (0..count)
        .map(|_| {
            let v = r.read(width)?;
            if v < limit {
                Ok(v)
            } else {
                Err(CodecError::Corrupt("matrix array entry out of range"))
            }
        })
        .collect()
}

/// Reads a pointer array of `count + 1` entries rising from 0 to `end`.
fn get_pointers(r: &mut BitReader<'_>, count: usize, end: usize) -> Result<Vec<usize>, CodecError> {
    let p: Vec<usize> = get_array(r, count + 1, end as u64 + 1)?
        .into_iter()
        .map(|v| v as usize)
        .collect();
    if p[0] != 0 || p[count] != end || p.windows(2).any(|w| w[0] > w[1]) {
        return Err(CodecError::Corrupt(
            "matrix pointers do not rise to the end",
        ));
    }
    Ok(p)
}

fn element<E: Element>(code: u64) -> Result<E, CodecError> {
    E::from_code(code).ok_or(CodecError::Corrupt("matrix value is no element"))
}

/// The distinct element codes of `m`, most frequent first (ties: smaller code first).
fn by_frequency<E: Element>(m: &Matrix<E>) -> Vec<u64> {
    let mut counts: HashMap<u64, usize> = HashMap::new();
    m.data
        .iter()
        .for_each(|e| *counts.entry(e.code()).or_default() += 1);
    let mut codes: Vec<(u64, usize)> = counts.into_iter().collect();
    codes.sort_by_key(|&(code, n)| (std::cmp::Reverse(n), code));
    codes.into_iter().map(|(code, _)| code).collect()
}

#[cfg(test)]
mod tests;
