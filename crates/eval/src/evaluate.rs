//! Running an original and a compressed network side by side and comparing their outputs.

use serde::{Deserialize, Serialize};

use crate::metrics::{
    argmax, cosine, estimated_agreement, in_top_k, kl_divergence, nearest_neighbours,
};
use crate::network::{InputData, Network, Outputs};
use crate::{EvalError, ImageSet, TokenSet};

/// Top-1 and top-5 accuracy, as fractions of the images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    pub top1: f64,
    pub top5: f64,
}

/// How a compressed classifier compares with the original on the same images.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassifierComparison {
    /// Accuracy of the compressed classifier.
    pub accuracy: Accuracy,
    /// Fraction of images whose top class is the same under both classifiers.
    pub top1_agreement: f64,
    /// Mean over images of KL(original softmax ‖ compressed softmax), in nats.
    pub mean_kl: f64,
    /// The top-1 agreement expected over a population of such images, estimated from every
    /// image's logit margin (see [`crate::metrics::estimated_agreement`]); absent in reports
    /// written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_agreement: Option<f64>,
}

/// Result of [`evaluate_images`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ImageReport {
    /// Number of images evaluated.
    pub images: usize,
    /// Accuracy of the original classifier.
    pub original: Accuracy,
    /// The compressed classifier against the original, when one was given.
    pub compressed: Option<ClassifierComparison>,
}

/// Mean and minimum of per-item cosine similarities.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CosineStats {
    pub mean: f64,
    pub min: f64,
}

/// How a compressed embedding network compares with the original on the same sentences.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingComparison {
    /// Cosine similarity between the two networks' embeddings of each sentence.
    pub cosine: CosineStats,
    /// Fraction of sentences whose most similar other sentence is the same under both networks.
    pub neighbour_agreement: f64,
}

/// Result of [`evaluate_tokens`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TokenReport {
    /// Number of sentences evaluated.
    pub sentences: usize,
    /// Cosine similarity of the original network's embeddings to the reference embeddings
    /// stored with the tokens (a check of the runtime), when there are any.
    pub reference: Option<CosineStats>,
    /// The compressed network against the original, when one was given.
    pub compressed: Option<EmbeddingComparison>,
}

/// Classifies `images` with `original` and, if given, `compressed` (both taking one `f32`
/// image input and giving one logit per ImageNet-1k class) and compares them. `progress` is
/// called with (images done, total) after each batch.
pub fn evaluate_images(
    original: &Network,
    compressed: Option<&Network>,
    images: &ImageSet,
    mut progress: impl FnMut(usize, usize),
) -> Result<ImageReport, EvalError> {
    check_classes(original, images)?;
    let inputs = [InputData::F32(images.pixels(0..images.len()))];
    let (base, other) = run_both(original, compressed, &inputs, &mut progress)?;
    let labels = images.labels();
    Ok(ImageReport {
        images: labels.len(),
        original: accuracy(&base, labels),
        compressed: other.map(|other| compare_logits(&base, &other, labels)),
    })
}

/// Embeds `tokens` with `original` and, if given, `compressed` (networks whose inputs are
/// named `input_ids`, `attention_mask` and/or `token_type_ids`) and compares the embeddings.
/// `progress` is called with (sentences done, total) after each batch.
pub fn evaluate_tokens(
    original: &Network,
    compressed: Option<&Network>,
    tokens: &TokenSet,
    mut progress: impl FnMut(usize, usize),
) -> Result<TokenReport, EvalError> {
    let inputs = token_inputs(original, tokens)?;
    let (base, other) = run_both(original, compressed, &inputs, &mut progress)?;
    Ok(TokenReport {
        sentences: base.rows,
        reference: reference_stats(&base, tokens)?,
        compressed: other.map(|other| compare_embeddings(&base, &other)),
    })
}

/// The original classifier's logits on an image set, computed once so that many compressed
/// variants can be compared with it (as [`evaluate_images`] does for one) at the cost of one
/// network run each.
#[derive(Debug, Clone)]
pub struct ImageBaseline {
    original: Network,
    logits: Outputs,
    labels: Vec<usize>,
}

impl ImageBaseline {
    /// Runs `original` on `images`; `progress` as in [`evaluate_images`].
    pub fn new(
        original: &Network,
        images: &ImageSet,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<ImageBaseline, EvalError> {
        check_classes(original, images)?;
        let inputs = [InputData::F32(images.pixels(0..images.len()))];
        let (logits, _) = run_both(original, None, &inputs, &mut progress)?;
        Ok(ImageBaseline {
            original: original.clone(),
            logits,
            labels: images.labels().to_vec(),
        })
    }

    /// Accuracy of the original classifier.
    pub fn accuracy(&self) -> Accuracy {
        accuracy(&self.logits, &self.labels)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there are no images (never, for a baseline built by [`ImageBaseline::new`]).
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Runs `compressed` on `images` (the set the baseline was built on) and compares it with
    /// the original.
    pub fn compare(
        &self,
        compressed: &Network,
        images: &ImageSet,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<ClassifierComparison, EvalError> {
        check_same_interface(&self.original, compressed)?;
        if images.labels() != self.labels.as_slice() {
            return Err(EvalError::Input(
                "the images differ from those the baseline was computed on".to_string(),
            ));
        }
        let inputs = [InputData::F32(images.pixels(0..images.len()))];
        let (logits, _) = run_both(compressed, None, &inputs, &mut progress)?;
        Ok(compare_logits(&self.logits, &logits, &self.labels))
    }
}

/// The original embedding network's outputs on a token set, computed once so that many
/// compressed variants can be compared with it (as [`evaluate_tokens`] does for one).
#[derive(Debug, Clone)]
pub struct TokenBaseline {
    original: Network,
    embeddings: Outputs,
    reference: Option<CosineStats>,
}

impl TokenBaseline {
    /// Runs `original` on `tokens`; `progress` as in [`evaluate_tokens`].
    pub fn new(
        original: &Network,
        tokens: &TokenSet,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<TokenBaseline, EvalError> {
        let inputs = token_inputs(original, tokens)?;
        let (embeddings, _) = run_both(original, None, &inputs, &mut progress)?;
        Ok(TokenBaseline {
            reference: reference_stats(&embeddings, tokens)?,
            original: original.clone(),
            embeddings,
        })
    }

    /// Cosine similarity of the original's embeddings to the reference embeddings stored with
    /// the tokens, when there are any.
    pub fn reference(&self) -> Option<CosineStats> {
        self.reference
    }

    /// Number of sentences.
    pub fn len(&self) -> usize {
        self.embeddings.rows
    }

    /// True when there are no sentences (never, for a baseline built by [`TokenBaseline::new`]).
    pub fn is_empty(&self) -> bool {
        self.embeddings.rows == 0
    }

    /// Runs `compressed` on `tokens` (the set the baseline was built on) and compares it with
    /// the original.
    pub fn compare(
        &self,
        compressed: &Network,
        tokens: &TokenSet,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<EmbeddingComparison, EvalError> {
        check_same_interface(&self.original, compressed)?;
        let inputs = token_inputs(compressed, tokens)?;
        let (embeddings, _) = run_both(compressed, None, &inputs, &mut progress)?;
        if embeddings.rows != self.embeddings.rows {
            return Err(EvalError::Input(
                "the sentences differ from those the baseline was computed on".to_string(),
            ));
        }
        Ok(compare_embeddings(&self.embeddings, &embeddings))
    }
}

/// The inputs of `network`, in its order, taken from `tokens`.
fn token_inputs<'a>(
    network: &Network,
    tokens: &'a TokenSet,
) -> Result<Vec<InputData<'a>>, EvalError> {
    network
        .inputs()
        .iter()
        .map(|spec| {
            tokens.input(&spec.name).ok_or_else(|| {
                EvalError::Input(format!(
                    "{} has input {:?}; token sets hold input_ids, attention_mask and token_type_ids",
                    network.path().display(),
                    spec.name
                ))
            })
        })
        .collect()
}

/// How close `embeddings` are to the reference embeddings stored with `tokens`, if any.
fn reference_stats(
    embeddings: &Outputs,
    tokens: &TokenSet,
) -> Result<Option<CosineStats>, EvalError> {
    match tokens.reference() {
        Some(reference) if reference.cols == embeddings.cols => Ok(Some(cosine_stats(
            &embeddings.data,
            &reference.data,
            embeddings.cols,
        ))),
        Some(reference) => Err(EvalError::Input(format!(
            "reference embeddings have {} values per sentence, the network gives {}",
            reference.cols, embeddings.cols
        ))),
        None => Ok(None),
    }
}

/// Compares compressed logits with the original's.
fn compare_logits(base: &Outputs, other: &Outputs, labels: &[usize]) -> ClassifierComparison {
    ClassifierComparison {
        accuracy: accuracy(other, labels),
        top1_agreement: top1_agreement(base, other),
        mean_kl: mean_kl(base, other),
        estimated_agreement: Some(estimated_agreement(&base.data, &other.data, base.cols)),
    }
}

/// Compares compressed embeddings with the original's.
fn compare_embeddings(base: &Outputs, other: &Outputs) -> EmbeddingComparison {
    EmbeddingComparison {
        cosine: cosine_stats(&base.data, &other.data, base.cols),
        neighbour_agreement: neighbour_agreement(base, other),
    }
}

/// Runs both networks on the same inputs, a batch at a time, the two in parallel.
fn run_both(
    original: &Network,
    compressed: Option<&Network>,
    inputs: &[InputData],
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Outputs, Option<Outputs>), EvalError> {
    if let Some(other) = compressed {
        check_same_interface(original, other)?;
    }
    let total = original.count_items(inputs)?;
    if total == 0 {
        return Err(EvalError::Input("there is nothing to evaluate".to_string()));
    }
    let mut base = Outputs::empty(original.output_len());
    let mut other = compressed.map(|network| Outputs::empty(network.output_len()));
    for start in (0..total).step_by(original.batch()) {
        let end = (start + original.batch()).min(total);
        let chunk: Vec<InputData> = original
            .inputs()
            .iter()
            .zip(inputs)
            .map(|(spec, data)| data.items(start..end, spec.item_len()))
            .collect();
        let (a, b) = rayon::join(
            || original.run(&chunk),
            || compressed.map(|network| network.run(&chunk)).transpose(),
        );
        base.append(a?);
        if let (Some(outputs), Some(more)) = (other.as_mut(), b?) {
            outputs.append(more);
        }
        progress(end, total);
    }
    Ok((base, other))
}

/// Errors unless `compressed` takes the inputs of `original` and gives outputs of its size.
fn check_same_interface(original: &Network, compressed: &Network) -> Result<(), EvalError> {
    if original.inputs() != compressed.inputs() || original.output_len() != compressed.output_len()
    {
        return Err(EvalError::Input(format!(
            "{} and {} differ in inputs or output size",
            original.path().display(),
            compressed.path().display()
        )));
    }
    Ok(())
}

/// Errors unless every label of `images` is a class the classifier scores.
fn check_classes(network: &Network, images: &ImageSet) -> Result<(), EvalError> {
    let classes = network.output_len();
    match images.labels().iter().position(|&label| label >= classes) {
        Some(at) => Err(EvalError::Input(format!(
            "{} scores {classes} classes, image {} has class {}",
            network.path().display(),
            images.names()[at],
            images.labels()[at]
        ))),
        None => Ok(()),
    }
}

/// Top-1 and top-5 accuracy of logits against labels.
fn accuracy(logits: &Outputs, labels: &[usize]) -> Accuracy {
    let hits = |k: usize| {
        labels
            .iter()
            .enumerate()
            .filter(|&(row, &label)| in_top_k(logits.row(row), label, k))
            .count()
    };
    Accuracy {
        top1: fraction(hits(1), labels.len()),
        top5: fraction(hits(5), labels.len()),
    }
}

/// Fraction of rows with the same argmax in both outputs.
fn top1_agreement(a: &Outputs, b: &Outputs) -> f64 {
    let same = (0..a.rows)
        .filter(|&row| argmax(a.row(row)) == argmax(b.row(row)))
        .count();
    fraction(same, a.rows)
}

/// Mean KL divergence of the rows' softmaxes.
fn mean_kl(a: &Outputs, b: &Outputs) -> f64 {
    let total: f64 = (0..a.rows)
        .map(|row| kl_divergence(a.row(row), b.row(row)))
        .sum();
    total / a.rows.max(1) as f64
}

/// Mean and minimum cosine similarity between corresponding rows of two matrices.
fn cosine_stats(a: &[f32], b: &[f32], cols: usize) -> CosineStats {
    let similarities: Vec<f64> = a
        .chunks_exact(cols)
        .zip(b.chunks_exact(cols))
        .map(|(x, y)| cosine(x, y))
        .collect();
    CosineStats {
        mean: similarities.iter().sum::<f64>() / similarities.len().max(1) as f64,
        min: similarities.iter().copied().fold(f64::INFINITY, f64::min),
    }
}

/// Fraction of rows whose nearest other row is the same in both outputs.
fn neighbour_agreement(a: &Outputs, b: &Outputs) -> f64 {
    let same = nearest_neighbours(&a.data, a.cols)
        .iter()
        .zip(nearest_neighbours(&b.data, b.cols))
        .filter(|&(x, y)| *x == y)
        .count();
    fraction(same, a.rows)
}

/// `count / total` (0 for an empty total).
fn fraction(count: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        count as f64 / total as f64
    }
}
