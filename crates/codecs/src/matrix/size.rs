//! The exact size of each encoding, computed without building it.
//!
//! CER lists an empty group for every value index skipped in a row, so on a dense matrix of
//! distinct floats it holds about `rows * distinct values` pointers: far too many to build, but
//! easy to count.

use super::{by_frequency, Element, Format, Matrix};
use crate::entropy::huffman::bits_for;
use std::collections::HashMap;

/// Bits of the 6-bit width field plus `count` entries of width `bits_for(max)`.
fn array_bits(count: usize, max: u64) -> u64 {
    6 + count as u64 * bits_for(max) as u64
}

fn varint_len(v: usize) -> usize {
    (bits_for(v as u64).max(1) as usize).div_ceil(7)
}

fn total(counts: &[usize], bits: u64) -> usize {
    counts.iter().map(|&c| varint_len(c)).sum::<usize>() + bits.div_ceil(8) as usize
}

/// Size in bytes of `encode(m, format)`.
pub fn size<E: Element>(m: &Matrix<E>, format: Format) -> usize {
    match format {
        Format::Coo | Format::Csr => sparse_size(m, format == Format::Csr),
        Format::Cer | Format::Cser => shared_size(m, format == Format::Cser),
    }
}

fn sparse_size<E: Element>(m: &Matrix<E>, csr: bool) -> usize {
    let (mut nnz, mut max_row, mut max_col, mut max_code) = (0usize, 0u64, 0u64, 0u64);
    for (i, e) in m.data.iter().enumerate() {
        if e.code() != 0 {
            nnz += 1;
            max_row = max_row.max((i / m.cols) as u64);
            max_col = max_col.max((i % m.cols) as u64);
            max_code = max_code.max(e.code());
        }
    }
    let positions = if csr {
        array_bits(m.rows + 1, nnz as u64)
    } else {
        array_bits(nnz, max_row)
    };
    let bits = positions + array_bits(nnz, max_col) + array_bits(nnz, max_code);
    total(&[nnz], bits)
}

fn shared_size<E: Element>(m: &Matrix<E>, cser: bool) -> usize {
    let omega = by_frequency(m);
    let index: HashMap<u64, usize> = omega.iter().enumerate().map(|(k, &c)| (c, k)).collect();
    let (mut groups, mut cells, mut max_col, mut max_k) = (0usize, 0usize, 0u64, 0u64);
    let mut ks = Vec::new();
    for r in 0..m.rows {
        ks.clear();
        for (c, e) in m.row(r).iter().enumerate() {
            let k = index[&e.code()];
            if k != 0 {
                ks.push(k);
                max_col = max_col.max(c as u64);
            }
        }
        cells += ks.len();
        ks.sort_unstable();
        ks.dedup();
        let last = ks.last().copied().unwrap_or(0);
        max_k = max_k.max(last as u64);
        groups += if cser { ks.len() } else { last };
    }
    let mut bits = array_bits(omega.len(), omega.iter().copied().max().unwrap_or(0))
        + array_bits(m.rows + 1, groups as u64)
        + array_bits(groups + 1, cells as u64)
        + array_bits(cells, max_col);
    if cser {
        bits += array_bits(groups, max_k);
    }
    total(&[omega.len(), groups, cells], bits)
}
