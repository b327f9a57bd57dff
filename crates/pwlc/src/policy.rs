//! Which tensors are coded lossily.
//!
//! Floating-point tensors with at least two dimensions and at least `min_elements` elements
//! (convolution, linear and embedding weights) take the lossy method; everything else (biases,
//! normalization parameters and statistics, integer and small tensors) is stored losslessly,
//! because one absolute bound applied to those destroys a model.

use pwlc_models::DType;
use regex::Regex;

/// The rule that sends each tensor to the lossy or the lossless codec.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Tensors with fewer elements are stored losslessly.
    pub min_elements: u64,
    /// Tensors whose name matches are stored losslessly.
    pub lossless: Option<Regex>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_elements: 1024,
            lossless: None,
        }
    }
}

/// What the policy decided for one tensor, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Lossy,
    LosslessNotFloat,
    LosslessFewDims,
    LosslessSmall,
    LosslessByName,
}

impl Decision {
    /// True if the tensor may be approximated.
    pub fn is_lossy(self) -> bool {
        self == Decision::Lossy
    }

    /// A short reason, shown by `inspect`.
    pub fn reason(self) -> &'static str {
        match self {
            Decision::Lossy => "lossy: float, >= 2 dimensions, >= min-elements",
            Decision::LosslessNotFloat => "lossless: not floating point",
            Decision::LosslessFewDims => "lossless: fewer than 2 dimensions",
            Decision::LosslessSmall => "lossless: fewer than min-elements",
            Decision::LosslessByName => "lossless: name matches --lossless",
        }
    }
}

impl Policy {
    /// A policy from its command-line form.
    pub fn new(min_elements: u64, lossless_pattern: Option<&str>) -> Result<Policy, regex::Error> {
        let lossless = lossless_pattern.map(Regex::new).transpose()?;
        Ok(Policy {
            min_elements,
            lossless,
        })
    }

    /// Decides how a tensor with this name, dtype and shape is coded.
    pub fn decide(&self, name: &str, dtype: DType, shape: &[u64]) -> Decision {
        if !dtype.is_float() {
            Decision::LosslessNotFloat
        } else if shape.len() < 2 {
            Decision::LosslessFewDims
        } else if shape.iter().product::<u64>() < self.min_elements {
            Decision::LosslessSmall
        } else if self.lossless.as_ref().is_some_and(|re| re.is_match(name)) {
            Decision::LosslessByName
        } else {
            Decision::Lossy
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_large_float_matrices_are_lossy() {
        let p = Policy::new(1024, Some("classifier")).unwrap();
        assert_eq!(p.decide("w", DType::F32, &[32, 32]), Decision::Lossy);
        assert_eq!(p.decide("w", DType::BF16, &[64, 3, 3, 3]), Decision::Lossy);
        assert_eq!(
            p.decide("b", DType::F32, &[4096]),
            Decision::LosslessFewDims
        );
        assert_eq!(
            p.decide("w", DType::F32, &[31, 33]),
            Decision::LosslessSmall
        );
        assert_eq!(
            p.decide("i", DType::I64, &[64, 64]),
            Decision::LosslessNotFloat
        );
        assert_eq!(
            p.decide("classifier.w", DType::F32, &[64, 64]),
            Decision::LosslessByName
        );
    }
}
