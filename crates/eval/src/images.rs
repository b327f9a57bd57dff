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

    /// Keeps only the first `limit` images.
    pub fn truncate(&mut self, limit: usize) {
        let count = self.len().min(limit);
        self.names.truncate(count);
        self.labels.truncate(count);
        self.pixels.truncate(count * self.item_len);
    }

    /// Splits the set into two disjoint halves by position: images 0, 2, 4, ... and images
    /// 1, 3, 5, ... (file-name order), so that both halves sample the classes alike. `pwlc
    /// tune` calibrates on the first and reports on the second.
    pub fn split_alternating(&self) -> (ImageSet, ImageSet) {
        (self.every_other(0), self.every_other(1))
    }

    /// The images at positions `first`, `first + 2`, ...
    fn every_other(&self, first: usize) -> ImageSet {
        let positions: Vec<usize> = (first..self.len()).step_by(2).collect();
        ImageSet {
            names: positions.iter().map(|&i| self.names[i].clone()).collect(),
            labels: positions.iter().map(|&i| self.labels[i]).collect(),
            pixels: positions
                .iter()
                .flat_map(|&i| self.pixels(i..i + 1).iter().copied())
                .collect(),
            item_len: self.item_len,
        }
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
