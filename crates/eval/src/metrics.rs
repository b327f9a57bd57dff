//! Per-item comparisons of network outputs: ranks, softmax divergence, cosine similarity.

use rayon::prelude::*;

/// Index of the largest value (the first one on ties; `0` for an empty slice).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (index, &value) in values.iter().enumerate() {
        if value > values[best] {
            best = index;
        }
    }
    best
}

/// True when `class` is among the `k` largest values: fewer than `k` values beat it (values
/// equal to it count as beating it only at lower indices, as a stable descending sort ranks).
pub fn in_top_k(values: &[f32], class: usize, k: usize) -> bool {
    let Some(&target) = values.get(class) else {
        return false;
    };
    let better = values
        .iter()
        .enumerate()
        .filter(|&(index, &value)| value > target || (value == target && index < class))
        .count();
    better < k
}

/// `log(softmax(logits))` in f64.
fn log_softmax(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let log_sum = logits
        .iter()
        .map(|&x| (x as f64 - max).exp())
        .sum::<f64>()
        .ln();
    logits.iter().map(|&x| x as f64 - max - log_sum).collect()
}

/// KL(softmax(p_logits) ‖ softmax(q_logits)) in nats.
pub fn kl_divergence(p_logits: &[f32], q_logits: &[f32]) -> f64 {
    let log_p = log_softmax(p_logits);
    let log_q = log_softmax(q_logits);
    log_p
        .iter()
        .zip(&log_q)
        .map(|(&lp, &lq)| lp.exp() * (lp - lq))
        .sum()
}

/// The top-1 agreement expected over a population of inputs like `rows` items of `original`
/// and `perturbed` logits (`cols` classes each), estimated from every item instead of the few
/// whose class flips. Each item's margin `m` (its top logit minus the runner-up) moves by `d`
/// under the perturbation; the moves are modelled as Gaussian with the spread `σ` measured over
/// all items (`σ² = mean d²`), so the item keeps its class with probability `Φ(m / σ)`. On a
/// few hundred items this varies smoothly with the perturbation where the measured agreement
/// jumps by whole items; it ignores classes other than the runner-up overtaking.
pub fn estimated_agreement(original: &[f32], perturbed: &[f32], cols: usize) -> f64 {
    let margins: Vec<(f64, f64)> = original
        .chunks_exact(cols)
        .zip(perturbed.chunks_exact(cols))
        .map(|(a, b)| {
            let (top, runner_up) = top_two(a);
            let margin = f64::from(a[top]) - f64::from(a[runner_up]);
            let moved = f64::from(b[top]) - f64::from(b[runner_up]);
            (margin, moved - margin)
        })
        .collect();
    if margins.is_empty() {
        return 1.0;
    }
    let spread = (margins.iter().map(|(_, d)| d * d).sum::<f64>() / margins.len() as f64).sqrt();
    if spread == 0.0 {
        return 1.0;
    }
    let kept: f64 = margins
        .iter()
        .map(|(m, _)| 0.5 * libm::erfc(-m / (spread * std::f64::consts::SQRT_2)))
        .sum();
    kept / margins.len() as f64
}

/// Indices of the largest and the second largest value (the first ones on ties).
fn top_two(values: &[f32]) -> (usize, usize) {
    let top = argmax(values);
    let mut second = if top == 0 {
        1.min(values.len().saturating_sub(1))
    } else {
        0
    };
    for (index, &value) in values.iter().enumerate() {
        if index != top && value > values[second] {
            second = index;
        }
    }
    (top, second)
}

/// Cosine similarity of two vectors (0 when either is zero), computed in f64.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut norm_a, mut norm_b) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        dot += x * y;
        norm_a += x * x;
        norm_b += y * y;
    }
    let norms = (norm_a * norm_b).sqrt();
    if norms > 0.0 {
        dot / norms
    } else {
        0.0
    }
}

/// For each row of a row-major matrix of `cols` columns, the index of the most cosine-similar
/// *other* row (the lowest index on ties; the row itself when it is the only one).
pub fn nearest_neighbours(rows: &[f32], cols: usize) -> Vec<usize> {
    let unit: Vec<Vec<f64>> = rows.chunks_exact(cols).map(unit_vector).collect();
    (0..unit.len())
        .into_par_iter()
        .map(|i| {
            let mut best = (i, f64::NEG_INFINITY);
            for (j, other) in unit.iter().enumerate() {
                let similarity = dot(&unit[i], other);
                if j != i && similarity > best.1 {
                    best = (j, similarity);
                }
            }
            best.0
        })
        .collect()
}

/// `v / |v|` in f64 (zeros stay zeros).
fn unit_vector(v: &[f32]) -> Vec<f64> {
    let norm = v
        .iter()
        .map(|&x| (x as f64) * (x as f64))
        .sum::<f64>()
        .sqrt();
    let scale = if norm > 0.0 { 1.0 / norm } else { 0.0 };
    v.iter().map(|&x| x as f64 * scale).collect()
}

/// Dot product in f64.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_ranks_ties_by_index() {
        let values = [0.1, 0.5, 0.5, 0.2];
        assert_eq!(argmax(&values), 1);
        assert!(in_top_k(&values, 1, 1));
        assert!(!in_top_k(&values, 2, 1));
        assert!(in_top_k(&values, 2, 2));
        assert!(!in_top_k(&values, 0, 3));
        assert!(in_top_k(&values, 0, 4));
        assert!(!in_top_k(&values, 9, 4));
    }

    #[test]
    fn kl_is_zero_for_equal_logits_and_positive_otherwise() {
        let p = [1.0, 2.0, 3.0];
        assert!(kl_divergence(&p, &p).abs() < 1e-12);
        // Shifting all logits leaves the softmax unchanged.
        assert!(kl_divergence(&p, &[11.0, 12.0, 13.0]).abs() < 1e-12);
        let q = [3.0, 2.0, 1.0];
        let expected = {
            let z: f64 = p.iter().map(|&x| (x as f64).exp()).sum();
            let sp: Vec<f64> = p.iter().map(|&x| (x as f64).exp() / z).collect();
            let sq: Vec<f64> = q.iter().map(|&x| (x as f64).exp() / z).collect();
            sp.iter()
                .zip(&sq)
                .map(|(a, b)| a * (a / b).ln())
                .sum::<f64>()
        };
        assert!((kl_divergence(&p, &q) - expected).abs() < 1e-12);
    }

    #[test]
    fn cosine_and_neighbours() {
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-12);
        assert!(cosine(&[1.0, 0.0], &[0.0, 3.0]).abs() < 1e-12);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        let rows = [1.0, 0.0, 0.9, 0.1, 0.0, 1.0];
        assert_eq!(nearest_neighbours(&rows, 2), vec![1, 0, 1]);
        assert_eq!(nearest_neighbours(&[1.0, 2.0], 2), vec![0]);
    }

    #[test]
    fn estimated_agreement_follows_the_margins() {
        // Unchanged logits: nothing can flip.
        let original = [3.0, 1.0, 0.0, 0.0, 2.0, 1.0];
        assert_eq!(estimated_agreement(&original, &original, 3), 1.0);
        // Margins 2 and 1, margin moves of ±1: σ = 1, so Φ(2) and Φ(1).
        let perturbed = [3.0, 2.0, 0.0, 0.0, 1.0, 1.0];
        let expected = (0.977_249_868 + 0.841_344_746) / 2.0;
        let estimate = estimated_agreement(&original, &perturbed, 3);
        assert!((estimate - expected).abs() < 1e-6, "{estimate}");
        // Larger moves lower the estimate.
        let worse = [3.0, 3.0, 0.0, 0.0, 0.0, 2.0];
        assert!(estimated_agreement(&original, &worse, 3) < estimate);
    }

    #[test]
    fn top_two_skips_the_top_on_ties_and_at_index_zero() {
        assert_eq!(top_two(&[5.0, 1.0, 4.0]), (0, 2));
        assert_eq!(top_two(&[1.0, 5.0, 1.0]), (1, 0));
        assert_eq!(top_two(&[2.0, 2.0]), (0, 1));
    }
}
