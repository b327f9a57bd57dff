//! Raw tensor dumps (`NAME.f32` little-endian values, `NAME.shape` dimensions separated by
//! spaces, as `scripts/dump_weights.py` writes them), shared by the `quant_bench` and `pwl_bench`
//! examples.

use std::error::Error;
use std::path::Path;

/// One tensor dump.
pub struct Tensor {
    /// The file name without `.f32`.
    pub name: String,
    /// The dimensions from `NAME.shape`.
    pub shape: Vec<u64>,
    /// The values of `NAME.f32`.
    pub values: Vec<f32>,
}

/// Every `NAME.f32` + `NAME.shape` pair in `dir`, in file-name order.
pub fn load(dir: &Path) -> Result<Vec<Tensor>, Box<dyn Error>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "f32"))
        .collect();
    paths.sort();
    let mut tensors = Vec::new();
    for path in paths {
        let shape = std::fs::read_to_string(path.with_extension("shape"))?
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<Vec<u64>, _>>()?;
        let values = std::fs::read(&path)?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let name = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into();
        tensors.push(Tensor {
            name,
            shape,
            values,
        });
    }
    Ok(tensors)
}
