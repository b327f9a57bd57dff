//! A labelled, preprocessed set of images.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::labels::label_for_file_name;
use crate::{EvalError, Preprocess};

/// Labelled images of one directory, preprocessed into network inputs, sorted by file name.
#[derive(Debug, Clone)]
pub struct ImageSet {
    names: Vec<String>,
    labels: Vec<usize>,
    /// The images' CHW values one after another, `item_len` each.
    pixels: Vec<f32>,
    item_len: usize,
}

impl ImageSet {
    /// Loads the `.jpg`/`.jpeg`/`.png` files of `dir` in file-name order (the first `limit` of
    /// them, if given), labels each by the WordNet id its name starts with and preprocesses
    /// them in parallel. The result does not depend on the number of threads.
    pub fn load(
        dir: &Path,
        limit: Option<usize>,
        preprocess: &Preprocess,
    ) -> Result<ImageSet, EvalError> {
        let mut files = image_files(dir)?;
        files.truncate(limit.unwrap_or(usize::MAX));
        if files.is_empty() {
            return Err(EvalError::NoImages(dir.to_path_buf()));
        }
        let names: Vec<String> = files.iter().map(|file| file_name(file)).collect();
        let labels = names
            .iter()
            .map(|name| label_for_file_name(name))
            .collect::<Result<Vec<_>, _>>()?;
        let decoded = files
            .par_iter()
            .map(|file| preprocess.load(file))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ImageSet {
            names,
            labels,
            pixels: decoded.concat(),
            item_len: preprocess.item_len(),
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the set holds no image (never after a successful [`ImageSet::load`]).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The file names, in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The ImageNet-1k class index of each image.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// Number of `f32` values of one preprocessed image.
    pub fn item_len(&self) -> usize {
        self.item_len
    }

    /// The preprocessed values of images `range`, one CHW image after another (panics when
    /// `range` reaches past [`ImageSet::len`], as slice indexing does).
    pub fn pixels(&self, range: std::ops::Range<usize>) -> &[f32] {
        &self.pixels[range.start * self.item_len..range.end * self.item_len]
    }
}

/// The image files of `dir`, sorted by file name.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>, EvalError> {
    let entries = std::fs::read_dir(dir).map_err(|source| EvalError::io(dir, source))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|source| EvalError::io(dir, source))?.path();
        if path.is_file() && has_image_extension(&path) {
            files.push(path);
        }
    }
    files.sort_by_key(|path| path.file_name().map(|name| name.to_os_string()));
    Ok(files)
}

/// True for `.jpg`, `.jpeg` and `.png` in any letter case.
fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| ["jpg", "jpeg", "png"].contains(&ext.to_ascii_lowercase().as_str()))
}

/// The file name of `path` as text (lossy for non-UTF-8 names).
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}
