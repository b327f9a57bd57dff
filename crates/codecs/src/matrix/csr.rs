//! COO and CSR: positions of the non-zero elements, and their values.

use super::{element, get_array, get_pointers, put_array, put_counts, Dims, Element, Matrix};
use crate::bitio::{BitReader, BitWriter};
use crate::CodecError;

/// `(row, column, code)` of every non-zero element, row-major.
fn non_zeros<E: Element>(m: &Matrix<E>) -> Vec<(usize, usize, u64)> {
    (0..m.rows)
        .flat_map(|r| {
            m.row(r)
                .iter()
                .enumerate()
                .filter(|(_, e)| e.code() != 0)
                .map(move |(c, e)| (r, c, e.code()))
        })
        .collect()
}

pub(super) fn put_coo<E: Element>(m: &Matrix<E>, out: &mut Vec<u8>, w: &mut BitWriter) {
    let nz = non_zeros(m);
    put_counts(out, &[nz.len()]);
    put_array(w, nz.iter().map(|t| t.0 as u64));
    put_array(w, nz.iter().map(|t| t.1 as u64));
    put_array(w, nz.iter().map(|t| t.2));
}

pub(super) fn put_csr<E: Element>(m: &Matrix<E>, out: &mut Vec<u8>, w: &mut BitWriter) {
    let nz = non_zeros(m);
    put_counts(out, &[nz.len()]);
    let mut pointers = vec![0u64; m.rows + 1];
    nz.iter().for_each(|t| pointers[t.0 + 1] += 1);
    for r in 0..m.rows {
        pointers[r + 1] += pointers[r];
    }
    put_array(w, pointers.into_iter());
    put_array(w, nz.iter().map(|t| t.1 as u64));
    put_array(w, nz.iter().map(|t| t.2));
}

/// Places non-zeros into a zero matrix, rejecting repeated positions.
fn assemble<E: Element>(
    dims: Dims,
    positions: impl Iterator<Item = (usize, usize)>,
    codes: Vec<u64>,
) -> Result<Matrix<E>, CodecError> {
    let zero = super::element::<E>(0)?;
    let mut data = vec![zero; dims.rows * dims.cols];
    let mut set = vec![false; data.len()];
    for ((r, c), code) in positions.zip(codes) {
        let i = r * dims.cols + c;
        if std::mem::replace(&mut set[i], true) || code == 0 {
            return Err(CodecError::Corrupt(
                "matrix position repeated or zero stored",
            ));
        }
        data[i] = element(code)?;
    }
    Matrix::new(dims.rows, dims.cols, data)
}

pub(super) fn get_coo<E: Element>(
    r: &mut BitReader<'_>,
    dims: Dims,
    nnz: usize,
) -> Result<Matrix<E>, CodecError> {
    let rows = get_array(r, nnz, dims.rows as u64)?;
    let cols = get_array(r, nnz, dims.cols as u64)?;
    let codes = get_array(r, nnz, u64::MAX)?;
    let positions = rows
        .iter()
        .zip(&cols)
        .map(|(&r, &c)| (r as usize, c as usize));
    assemble(dims, positions, codes)
}

pub(super) fn get_csr<E: Element>(
    r: &mut BitReader<'_>,
    dims: Dims,
    nnz: usize,
) -> Result<Matrix<E>, CodecError> {
    let pointers = get_pointers(r, dims.rows, nnz)?;
    let cols = get_array(r, nnz, dims.cols as u64)?;
    let codes = get_array(r, nnz, u64::MAX)?;
    let rows = (0..dims.rows).flat_map(|row| (pointers[row]..pointers[row + 1]).map(move |_| row));
    let positions = rows.zip(cols.iter().map(|&c| c as usize));
    assemble(dims, positions, codes)
}
