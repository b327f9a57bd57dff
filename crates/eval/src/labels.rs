//! ImageNet-1k labels: the WordNet id at the start of an image's file name, mapped to the
//! standard class index.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::EvalError;

/// The 1000 ImageNet-1k WordNet ids in class-index order (line k is class k), as the
/// classifiers' logits are ordered.
pub const IMAGENET_WNIDS: &str = include_str!("imagenet-wnids.txt");

/// Number of ImageNet-1k classes.
pub const IMAGENET_CLASSES: usize = 1000;

/// The class index of an ImageNet-1k WordNet id (`n01440764` → 0), if it is one.
pub fn class_index(wnid: &str) -> Option<usize> {
    static INDEX: OnceLock<HashMap<&'static str, usize>> = OnceLock::new();
    INDEX
        .get_or_init(|| {
            IMAGENET_WNIDS
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .enumerate()
                .map(|(index, wnid)| (wnid, index))
                .collect()
        })
        .get(wnid)
        .copied()
}

/// The class index of an image from its file name: the WordNet id before the first `_` or `.`
/// (`n01440764_tench.JPEG` → 0). Errors name the file when the id is not an ImageNet-1k class.
pub fn label_for_file_name(file_name: &str) -> Result<usize, EvalError> {
    let wnid = file_name.split(['_', '.']).next().unwrap_or(file_name);
    class_index(wnid).ok_or_else(|| EvalError::UnknownWnid {
        file: file_name.to_string(),
        wnid: wnid.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_has_1000_distinct_classes() {
        let wnids: Vec<&str> = IMAGENET_WNIDS.lines().collect();
        assert_eq!(wnids.len(), IMAGENET_CLASSES);
        for (index, wnid) in wnids.iter().enumerate() {
            assert_eq!(class_index(wnid), Some(index), "{wnid}");
        }
    }
}
