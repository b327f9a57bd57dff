//! File helpers shared by the adapters.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use bytes::Bytes;

use crate::ModelError;

/// Reads up to `n` bytes from the start of `path`.
pub(crate) fn read_head(path: &Path, n: usize) -> Result<Vec<u8>, ModelError> {
    let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut head = Vec::with_capacity(n);
    file.take(n as u64)
        .read_to_end(&mut head)
        .map_err(|e| ModelError::io(path, e))?;
    Ok(head)
}

/// Memory-maps `path` read-only as shared bytes, so tensors can borrow from it without copies.
pub fn map_file(path: &Path) -> Result<Bytes, ModelError> {
    let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
    let len = file.metadata().map_err(|e| ModelError::io(path, e))?.len();
    if len == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the map is read-only and private to this process. If another process truncates
    // or rewrites the file while it is mapped, reads may fault or see new bytes; pwlc never
    // writes to its inputs, and every payload it derives is checksummed downstream.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))?;
    Ok(Bytes::from_owner(map))
}

/// Writes `path` through `fill`: to a temporary file in the same folder, renamed on success,
/// so a failed or interrupted write never leaves a partial file under `path`.
pub fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), ModelError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".pwlc-tmp");
    // Temporary files are created 0600; outputs get the usual mode of a new file.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(|e| ModelError::io(path, e))?;
    {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        fill(&mut w).map_err(|e| ModelError::io(path, e))?;
        w.flush().map_err(|e| ModelError::io(path, e))?;
    }
    tmp.persist(path)
        .map_err(|e| ModelError::io(path, e.error))?;
    Ok(())
}
