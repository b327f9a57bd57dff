//! CER and CSER: per row, the columns of each shared value, values ordered by frequency.

use super::{
    by_frequency, element, get_array, get_pointers, put_array, put_counts, Dims, Element, Matrix,
};
use crate::bitio::{BitReader, BitWriter};
use crate::CodecError;
use std::collections::HashMap;

/// One row's groups: (value index >= 1, ascending columns), by value index.
fn row_groups<E: Element>(row: &[E], index: &HashMap<u64, usize>) -> Vec<(usize, Vec<usize>)> {
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    let mut cells: Vec<(usize, usize)> = row
        .iter()
        .enumerate()
        .map(|(c, e)| (index[&e.code()], c))
        .filter(|&(k, _)| k != 0)
        .collect();
    cells.sort_unstable();
    for (k, c) in cells {
        match groups.last_mut() {
            Some((last, cols)) if *last == k => cols.push(c),
            _ => groups.push((k, vec![c])),
        }
    }
    groups
}

/// Writes CER (`shared == false`: every group up to the row's last value, empty ones too) or
/// CSER (`shared == true`: non-empty groups with their value indices).
pub(super) fn put<E: Element>(m: &Matrix<E>, shared: bool, out: &mut Vec<u8>, w: &mut BitWriter) {
    let omega = by_frequency(m);
    let index: HashMap<u64, usize> = omega.iter().enumerate().map(|(k, &c)| (c, k)).collect();
    let (mut row_ptr, mut omega_ptr, mut omega_i, mut col_i) =
        (vec![0u64], vec![0u64], vec![], vec![]);
    for r in 0..m.rows {
        let groups = row_groups(m.row(r), &index);
        let mut next_k = 1;
        for (k, cols) in groups {
            if !shared {
                // CER lists every value index in order: empty groups for the skipped ones.
                while next_k < k {
                    omega_ptr.push(col_i.len() as u64);
                    next_k += 1;
                }
            }
            col_i.extend(cols.iter().map(|&c| c as u64));
            omega_ptr.push(col_i.len() as u64);
            omega_i.push(k as u64);
            next_k = k + 1;
        }
        row_ptr.push(omega_ptr.len() as u64 - 1);
    }
    put_counts(out, &[omega.len(), omega_ptr.len() - 1, col_i.len()]);
    put_array(w, omega.iter().copied());
    put_array(w, row_ptr.into_iter());
    put_array(w, omega_ptr.into_iter());
    if shared {
        put_array(w, omega_i.into_iter());
    }
    put_array(w, col_i.into_iter());
}

pub(super) fn get<E: Element>(
    r: &mut BitReader<'_>,
    dims: Dims,
    counts: &[usize],
    shared: bool,
) -> Result<Matrix<E>, CodecError> {
    let &[values, groups, cells] = counts else {
        return Err(CodecError::Corrupt("CER header counts missing"));
    };
    if values == 0 && dims.rows * dims.cols > 0 {
        return Err(CodecError::Corrupt("CER matrix without values"));
    }
    if cells == 0 && groups > 0 {
        return Err(CodecError::Corrupt("CER groups without cells"));
    }
    let omega: Vec<E> = get_array(r, values, u64::MAX)?
        .into_iter()
        .map(element)
        .collect::<Result<_, _>>()?;
    let row_ptr = get_pointers(r, dims.rows, groups)?;
    let omega_ptr = get_pointers(r, groups, cells)?;
    let omega_i = if shared {
        get_array(r, groups, values as u64)?
    } else {
        Vec::new()
    };
    let col_i = get_array(r, cells, dims.cols as u64)?;
    let background = omega.first().copied();
    let mut data = Vec::with_capacity(dims.rows * dims.cols);
    for row in 0..dims.rows {
        let start = data.len();
        data.extend((0..dims.cols).filter_map(|_| background));
        for (j, g) in (row_ptr[row]..row_ptr[row + 1]).enumerate() {
            let k = if shared { omega_i[g] as usize } else { j + 1 };
            let value = *omega
                .get(k)
                .filter(|_| k > 0)
                .ok_or(CodecError::Corrupt("CER value index out of range"))?;
            for &c in &col_i[omega_ptr[g]..omega_ptr[g + 1]] {
                data[start + c as usize] = value;
            }
        }
    }
    Matrix::new(dims.rows, dims.cols, data)
}
