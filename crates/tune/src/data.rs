//! The calibration data, the accuracy target and how a variant is measured against the original.

use pwlc_eval::{
    ClassifierComparison, EmbeddingComparison, ImageBaseline, ImageSet, Network, TokenBaseline,
    TokenSet,
};
use serde::Serialize;

use crate::TuneError;

/// Items a network is measured on: labelled images for a classifier, tokenized sentences for an
/// embedding network.
#[derive(Debug, Clone)]
pub enum Data {
    Images(ImageSet),
    Tokens(TokenSet),
}

impl Data {
    /// Number of items.
    pub fn len(&self) -> usize {
        match self {
            Data::Images(images) => images.len(),
            Data::Tokens(tokens) => tokens.len(),
        }
    }

    /// True when there are no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first `count` items.
    pub fn first(&self, count: usize) -> Data {
        match self {
            Data::Images(images) => {
                let mut first = images.clone();
                first.truncate(count);
                Data::Images(first)
            }
            Data::Tokens(tokens) => {
                let mut first = tokens.clone();
                first.truncate(count);
                Data::Tokens(first)
            }
        }
    }

    /// Two disjoint halves (alternating items): one to calibrate on, one to report on.
    pub fn split_alternating(&self) -> (Data, Data) {
        match self {
            Data::Images(images) => {
                let (a, b) = images.split_alternating();
                (Data::Images(a), Data::Images(b))
            }
            Data::Tokens(tokens) => {
                let (a, b) = tokens.split_alternating();
                (Data::Tokens(a), Data::Tokens(b))
            }
        }
    }
}

/// What a compressed network must keep, measured against the original.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A classifier: at least this fraction of the items keep their top-1 class.
    MinAgreement(f64),
    /// An embedding network: the mean cosine similarity to the original's embeddings is at least
    /// this.
    MinCosine(f64),
}

/// How close a variant's outputs are to the original's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    Classifier(ClassifierComparison),
    Embedding(EmbeddingComparison),
}

impl Quality {
    /// A smooth measure of output change that grows as the square of small weight errors: the
    /// mean KL divergence for classifiers, one minus the mean cosine for embeddings.
    pub fn distortion(&self) -> f64 {
        match self {
            Quality::Classifier(c) => c.mean_kl,
            Quality::Embedding(e) => 1.0 - e.cosine.mean,
        }
    }

    /// Whether this meets `target` (a target of the other kind of network is never met).
    pub fn meets(&self, target: Target) -> bool {
        match (self, target) {
            (Quality::Classifier(c), Target::MinAgreement(min)) => c.top1_agreement >= min,
            (Quality::Embedding(e), Target::MinCosine(min)) => e.cosine.mean >= min,
            _ => false,
        }
    }
}

/// The original network's outputs on some data, to measure variants against.
pub(crate) enum Baseline<'d> {
    Images(ImageBaseline, &'d ImageSet),
    Tokens(TokenBaseline, &'d TokenSet),
}

impl<'d> Baseline<'d> {
    /// Runs `original` on `data`.
    pub fn new(original: &Network, data: &'d Data) -> Result<Baseline<'d>, TuneError> {
        Ok(match data {
            Data::Images(images) => {
                Baseline::Images(ImageBaseline::new(original, images, |_, _| {})?, images)
            }
            Data::Tokens(tokens) => {
                Baseline::Tokens(TokenBaseline::new(original, tokens, |_, _| {})?, tokens)
            }
        })
    }

    /// Runs `variant` on the baseline's data and compares it with the original.
    pub fn measure(&self, variant: &Network) -> Result<Quality, TuneError> {
        Ok(match self {
            Baseline::Images(baseline, images) => {
                Quality::Classifier(baseline.compare(variant, images, |_, _| {})?)
            }
            Baseline::Tokens(baseline, tokens) => {
                Quality::Embedding(baseline.compare(variant, tokens, |_, _| {})?)
            }
        })
    }

    /// Checks that the target suits the network the baseline was computed for.
    pub fn check_target(&self, target: Target) -> Result<(), TuneError> {
        match (self, target) {
            (Baseline::Images(..), Target::MinAgreement(_))
            | (Baseline::Tokens(..), Target::MinCosine(_)) => Ok(()),
            (Baseline::Images(..), Target::MinCosine(_)) => Err(TuneError::TargetMismatch(
                "a cosine target needs token data (an embedding network)",
            )),
            (Baseline::Tokens(..), Target::MinAgreement(_)) => Err(TuneError::TargetMismatch(
                "an agreement target needs image data (a classifier)",
            )),
        }
    }
}
