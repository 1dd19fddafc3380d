//! Parameter importance: the share of the objective's variance that each parameter explains
//! on its own, by functional ANOVA on a random forest (fANOVA: Hutter, Hoos and Leyton-Brown,
//! "An Efficient Approach for Assessing Hyperparameter Importance", ICML 2014), as Optuna's
//! default importance evaluator reports it.
//!
//! A forest of regression trees is fitted to the trials (each on a bootstrap sample, split by
//! least squares). Each tree partitions the search box into leaves, boxes with a constant
//! prediction, so its predicted function's variance over the box and the variance of each
//! parameter's marginal (the prediction averaged over every other parameter) are exact sums
//! over the leaves. A parameter's importance is its marginal's variance over the total,
//! averaged over the trees whose prediction varies at all; the interactions make up the rest,
//! so importances sum to at most 1.
//!
//! Written here rather than taken from a forest crate: fANOVA reads each tree's leaves as
//! boxes, which the forests of smartcore and linfa keep private, and the fitting it needs
//! (least-squares splits on a bootstrap sample) is small.
//!
//! The caller chooses each parameter's coordinates: the bounds of its box side and its values
//! in them (a log-scaled parameter on a log axis, a categorical one as the index `c` of its
//! value, placed at `c + 0.5` in the box `[0, k)` so that each value weighs the same).

use rand::Rng;

/// Why importance cannot be computed from what was given.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// No trial has an objective value yet.
    #[error("no trials with an objective value to learn from")]
    NoTrials,
    /// A row has another number of values than there are parameters.
    #[error("row {row} has {found} values for {expected} parameters")]
    RowLength {
        /// The row.
        row: usize,
        /// Its length.
        found: usize,
        /// The number of parameters.
        expected: usize,
    },
    /// A parameter's bounds are not a non-empty finite interval.
    #[error("parameter {parameter} has bounds [{low}, {high}], not a finite interval")]
    Bounds {
        /// The parameter's index.
        parameter: usize,
        /// Its lower bound.
        low: f64,
        /// Its upper bound.
        high: f64,
    },
    /// A value or target is NaN or infinite.
    #[error("row {row} holds a value that is not finite")]
    NotFinite {
        /// The row.
        row: usize,
    },
    /// There are more or fewer targets than rows.
    #[error("{rows} rows but {targets} targets")]
    TargetCount {
        /// Rows given.
        rows: usize,
        /// Targets given.
        targets: usize,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One side of the search box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// The smallest coordinate.
    pub low: f64,
    /// The largest coordinate.
    pub high: f64,
}

/// The forest's size and shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForestConfig {
    /// Trees in the forest (Optuna's fANOVA fits 64).
    pub tree_count: usize,
    /// The deepest a tree grows.
    pub max_depth: usize,
    /// The largest bootstrap sample a tree is fitted to: beyond a few thousand trials a larger
    /// sample changes the importances little and costs time.
    pub max_samples: usize,
}

impl Default for ForestConfig {
    fn default() -> ForestConfig {
        ForestConfig {
            tree_count: 32,
            max_depth: 16,
            max_samples: 2_000,
        }
    }
}

/// Each parameter's importance (its main effect's share of the variance, in `[0, 1]`), in the
/// order of `bounds`; all zero when the fitted function does not vary.
pub fn fanova(
    bounds: &[Bounds],
    rows: &[Vec<f64>],
    targets: &[f64],
    config: &ForestConfig,
    rng: &mut impl Rng,
) -> Result<Vec<f64>> {
    check(bounds, rows, targets)?;
    let mut totals = vec![0.0; bounds.len()];
    let mut varying_trees = 0usize;
    let sample_size = rows.len().min(config.max_samples.max(1));
    for _ in 0..config.tree_count {
        let mut sample: Vec<usize> = (0..sample_size)
            .map(|_| rng.random_range(0..rows.len()))
            .collect();
        let mut leaves = Vec::new();
        let root = Leaf {
            lower: bounds.iter().map(|side| side.low).collect(),
            upper: bounds.iter().map(|side| side.high).collect(),
            value: 0.0,
        };
        grow(
            rows,
            targets,
            &mut sample,
            root,
            config.max_depth,
            &mut leaves,
        );
        if let Some(shares) = main_effects(bounds, &leaves) {
            varying_trees += 1;
            for (total, share) in totals.iter_mut().zip(shares) {
                *total += share;
            }
        }
    }
    if varying_trees > 0 {
        for total in &mut totals {
            *total /= varying_trees as f64;
        }
    }
    Ok(totals)
}

/// A leaf of a tree: a box and the mean target of the samples that fell in it.
#[derive(Debug, Clone)]
struct Leaf {
    lower: Vec<f64>,
    upper: Vec<f64>,
    value: f64,
}

fn check(bounds: &[Bounds], rows: &[Vec<f64>], targets: &[f64]) -> Result<()> {
    if rows.is_empty() {
        return Err(Error::NoTrials);
    }
    if rows.len() != targets.len() {
        return Err(Error::TargetCount {
            rows: rows.len(),
            targets: targets.len(),
        });
    }
    for (parameter, side) in bounds.iter().enumerate() {
        if !(side.low.is_finite() && side.high.is_finite() && side.low < side.high) {
            return Err(Error::Bounds {
                parameter,
                low: side.low,
                high: side.high,
            });
        }
    }
    for (row, (values, target)) in rows.iter().zip(targets).enumerate() {
        if values.len() != bounds.len() {
            return Err(Error::RowLength {
                row,
                found: values.len(),
                expected: bounds.len(),
            });
        }
        if !target.is_finite() || values.iter().any(|value| !value.is_finite()) {
            return Err(Error::NotFinite { row });
        }
    }
    Ok(())
}

/// Fits the subtree over `sample` (indices into `rows`, repeated for a bootstrap) inside
/// `node`'s box by least-squares splits, and pushes its leaves.
fn grow(
    rows: &[Vec<f64>],
    targets: &[f64],
    sample: &mut [usize],
    mut node: Leaf,
    depth_left: usize,
    leaves: &mut Vec<Leaf>,
) {
    let count = sample.len() as f64;
    node.value = sample.iter().map(|&index| targets[index]).sum::<f64>() / count;
    let split = if depth_left == 0 || sample.len() < 2 {
        None
    } else {
        best_split(rows, targets, sample, node.lower.len())
    };
    let Some((feature, threshold)) = split else {
        leaves.push(node);
        return;
    };
    // Partition in place: samples below the threshold first.
    let mut boundary = 0;
    for position in 0..sample.len() {
        if rows[sample[position]][feature] <= threshold {
            sample.swap(position, boundary);
            boundary += 1;
        }
    }
    let (left_sample, right_sample) = sample.split_at_mut(boundary);
    let mut left = node.clone();
    left.upper[feature] = threshold;
    let mut right = node;
    right.lower[feature] = threshold;
    grow(rows, targets, left_sample, left, depth_left - 1, leaves);
    grow(rows, targets, right_sample, right, depth_left - 1, leaves);
}

/// The feature and threshold whose split lowers the squared error most, if any split lowers
/// it; the threshold lies midway between two neighbouring distinct values.
fn best_split(
    rows: &[Vec<f64>],
    targets: &[f64],
    sample: &[usize],
    feature_count: usize,
) -> Option<(usize, f64)> {
    let total: f64 = sample.iter().map(|&index| targets[index]).sum();
    // Minimizing the squared error is maximizing sum_left^2/n_left + sum_right^2/n_right.
    let unsplit = total * total / sample.len() as f64;
    let tolerance = 1e-12 * unsplit.abs().max(1.0);
    let mut best: Option<(f64, usize, f64)> = None;
    let mut order: Vec<usize> = sample.to_vec();
    for feature in 0..feature_count {
        if let Some((score, threshold)) = best_threshold(rows, targets, &mut order, feature, total)
            && score > best.map_or(unsplit, |(best_score, ..)| best_score) + tolerance
        {
            best = Some((score, feature, threshold));
        }
    }
    best.map(|(_, feature, threshold)| (feature, threshold))
}

/// The best split of `order` (sorted here) on `feature`: its score and threshold.
fn best_threshold(
    rows: &[Vec<f64>],
    targets: &[f64],
    order: &mut [usize],
    feature: usize,
    total: f64,
) -> Option<(f64, f64)> {
    order.sort_by(|&a, &b| rows[a][feature].total_cmp(&rows[b][feature]));
    let count = order.len() as f64;
    let mut left_sum = 0.0;
    let mut best: Option<(f64, f64)> = None;
    for (position, pair) in order.windows(2).enumerate() {
        left_sum += targets[pair[0]];
        let here = rows[pair[0]][feature];
        let next = rows[pair[1]][feature];
        if here == next {
            continue;
        }
        let left_count = (position + 1) as f64;
        let right_sum = total - left_sum;
        let score = left_sum * left_sum / left_count + right_sum * right_sum / (count - left_count);
        if best.is_none_or(|(best_score, _)| score > best_score) {
            best = Some((score, here + (next - here) / 2.0));
        }
    }
    best
}

/// Each parameter's share of the variance of the function the leaves define over the box, or
/// `None` when it is constant.
fn main_effects(bounds: &[Bounds], leaves: &[Leaf]) -> Option<Vec<f64>> {
    let widths: Vec<f64> = bounds.iter().map(|side| side.high - side.low).collect();
    // Each leaf's share of the box's volume.
    let volumes: Vec<f64> = leaves
        .iter()
        .map(|leaf| {
            (0..widths.len())
                .map(|feature| (leaf.upper[feature] - leaf.lower[feature]) / widths[feature])
                .product()
        })
        .collect();
    let mean: f64 = leaves
        .iter()
        .zip(&volumes)
        .map(|(leaf, volume)| leaf.value * volume)
        .sum();
    let variance: f64 = leaves
        .iter()
        .zip(&volumes)
        .map(|(leaf, volume)| volume * (leaf.value - mean).powi(2))
        .sum();
    if variance <= 1e-12 * mean.abs().max(1.0).powi(2) {
        return None;
    }
    let shares = (0..widths.len())
        .map(|feature| marginal_variance(feature, &widths, leaves, &volumes, mean) / variance)
        .collect();
    Some(shares)
}

/// The variance over the box of the prediction averaged over every parameter but `feature`:
/// that average is constant between the leaves' boundaries along `feature`, and each leaf adds
/// its value times its volume outside `feature` to the intervals it spans.
fn marginal_variance(
    feature: usize,
    widths: &[f64],
    leaves: &[Leaf],
    volumes: &[f64],
    mean: f64,
) -> f64 {
    let mut cuts: Vec<f64> = leaves
        .iter()
        .flat_map(|leaf| [leaf.lower[feature], leaf.upper[feature]])
        .collect();
    cuts.sort_by(f64::total_cmp);
    cuts.dedup();
    let position = |value: f64| cuts.partition_point(|cut| *cut < value);
    // Added where a leaf starts, taken away where it ends; the running sum is the marginal.
    let mut steps = vec![0.0; cuts.len()];
    for (leaf, volume) in leaves.iter().zip(volumes) {
        let side = (leaf.upper[feature] - leaf.lower[feature]) / widths[feature];
        let contribution = leaf.value * volume / side;
        steps[position(leaf.lower[feature])] += contribution;
        steps[position(leaf.upper[feature])] -= contribution;
    }
    let mut marginal = 0.0;
    let mut variance = 0.0;
    for (pair, step) in cuts.windows(2).zip(&steps) {
        marginal += step;
        let share = (pair[1] - pair[0]) / widths[feature];
        variance += share * (marginal - mean).powi(2);
    }
    variance
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn unit(count: usize) -> Vec<Bounds> {
        vec![
            Bounds {
                low: 0.0,
                high: 1.0
            };
            count
        ]
    }

    /// `count` points spread over the unit square, with `f` of each.
    fn sample(count: usize, f: impl Fn(f64, f64) -> f64) -> (Vec<Vec<f64>>, Vec<f64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let rows: Vec<Vec<f64>> = (0..count)
            .map(|_| vec![rng.random::<f64>(), rng.random::<f64>()])
            .collect();
        let targets = rows.iter().map(|row| f(row[0], row[1])).collect();
        (rows, targets)
    }

    fn importance(rows: &[Vec<f64>], targets: &[f64]) -> Vec<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        fanova(&unit(2), rows, targets, &ForestConfig::default(), &mut rng).unwrap()
    }

    #[test]
    fn a_parameter_the_objective_ignores_has_no_importance() {
        let (rows, targets) = sample(300, |x, _| (6.0 * x).sin());
        let shares = importance(&rows, &targets);
        assert!(shares[0] > 0.9, "{shares:?}");
        assert!(shares[1] < 0.02, "{shares:?}");
    }

    #[test]
    fn additive_effects_share_the_variance_by_their_own_variances() {
        // 3x has nine times the variance of y over the unit square.
        let (rows, targets) = sample(400, |x, y| 3.0 * x + y);
        let shares = importance(&rows, &targets);
        assert!((shares[0] - 0.9).abs() < 0.05, "{shares:?}");
        assert!((shares[1] - 0.1).abs() < 0.05, "{shares:?}");
        assert!(shares.iter().sum::<f64>() <= 1.0 + 1e-9);
    }

    #[test]
    fn a_pure_interaction_leaves_little_to_either_main_effect() {
        let (rows, targets) = sample(400, |x, y| (x - 0.5) * (y - 0.5));
        let shares = importance(&rows, &targets);
        assert!(shares.iter().all(|share| *share < 0.15), "{shares:?}");
    }

    #[test]
    fn a_constant_objective_gives_zeros_and_one_seed_one_answer() {
        let (rows, _) = sample(50, |_, _| 0.0);
        assert_eq!(importance(&rows, &[2.0; 50]), vec![0.0, 0.0]);
        let (rows, targets) = sample(100, |x, y| x * x + y);
        assert_eq!(importance(&rows, &targets), importance(&rows, &targets));
    }

    #[test]
    fn categorical_indices_split_between_their_values() {
        // Three categories at 0.5, 1.5, 2.5 in [0, 3); only the middle one is good.
        let rows: Vec<Vec<f64>> = (0..90).map(|i| vec![(i % 3) as f64 + 0.5]).collect();
        let targets: Vec<f64> = (0..90)
            .map(|i| if i % 3 == 1 { 0.0 } else { 1.0 })
            .collect();
        let bounds = [Bounds {
            low: 0.0,
            high: 3.0,
        }];
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let shares = fanova(&bounds, &rows, &targets, &ForestConfig::default(), &mut rng).unwrap();
        assert!((shares[0] - 1.0).abs() < 1e-9, "{shares:?}");
    }

    #[test]
    fn what_cannot_be_learned_from_is_refused() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let config = ForestConfig::default();
        assert_eq!(
            fanova(&unit(1), &[], &[], &config, &mut rng),
            Err(Error::NoTrials)
        );
        assert_eq!(
            fanova(&unit(2), &[vec![0.5]], &[1.0], &config, &mut rng),
            Err(Error::RowLength {
                row: 0,
                found: 1,
                expected: 2
            })
        );
        let empty = [Bounds {
            low: 1.0,
            high: 1.0,
        }];
        assert!(matches!(
            fanova(&empty, &[vec![1.0]], &[1.0], &config, &mut rng),
            Err(Error::Bounds { parameter: 0, .. })
        ));
        assert_eq!(
            fanova(&unit(1), &[vec![0.5]], &[f64::NAN], &config, &mut rng),
            Err(Error::NotFinite { row: 0 })
        );
        assert_eq!(
            fanova(&unit(1), &[vec![0.5]], &[], &config, &mut rng),
            Err(Error::TargetCount {
                rows: 1,
                targets: 0
            })
        );
    }
}
