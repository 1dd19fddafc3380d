//! Parzen estimators on the search scale: the densities `l(x)` and `g(x)` of TPE.
//!
//! Every parameter is first given an [`Axis`]: continuous parameters live on `[0, 1]` of their
//! search scale ([`Parameter::to_unit`], logarithmic for log distributions); int and stepped
//! double parameters ("lattices") on `[0, 1]` of a widened scale in which each feasible value
//! owns a cell reaching halfway to its neighbours, so a kernel's mass over a cell is the
//! probability of that value (the discretized kernel of Watanabe 2023); discrete and
//! categorical parameters by their list index; parameters with one feasible value are fixed and
//! not modelled.
//!
//! An estimator is a weighted mixture of one component per observation plus one prior
//! component (Bergstra et al. 2011, §4). A numeric component is a Gaussian truncated to
//! `[0, 1]`, on a lattice no narrower than [`Bandwidth::cell_floor`] cells; the prior's is
//! centred at 0.5 with standard deviation 1 (uniform priors) or 1/6 (normal and logNormal
//! priors, matching [`crate::space`]'s prior). A categorical component puts mass
//! `(1 + eps) / (1 + K eps)` on its observed choice and `eps / (1 + K eps)` on each other,
//! with `eps = prior_weight / (n + 1)`; the prior's is uniform. The mixture is either a
//! product over parameters of per-parameter mixtures ([`Parzen::log_density_of_dimension`],
//! univariate TPE) or a mixture of product kernels, each component a full point
//! ([`Parzen::log_density_joint`], multivariate TPE).

use rand::Rng;

use crate::space::{Distribution, Domain, Parameter, SearchSpace, Value};
use crate::stats::{normal_cdf, normal_quantile};

/// `ln(sqrt(2 pi))`.
const LN_SQRT_2PI: f64 = 0.918_938_533_204_672_8;

/// Cells narrower than this many standard deviations are integrated by the midpoint rule, which
/// is exact to 0.3% there and, unlike a difference of CDFs, never loses precision.
const MIDPOINT_RULE_WIDTH: f64 = 0.05;

/// How the estimators see one parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Axis {
    /// One feasible value: nothing to model.
    Fixed(Value),
    /// A real value on `[0, 1]` of the search scale.
    Continuous {
        /// The parameter, which converts between values and the unit scale.
        parameter: Parameter,
        /// The prior component's standard deviation on the unit scale.
        prior_sigma: f64,
    },
    /// `count >= 2` ordered values, each owning a cell of `[0, 1]`.
    Lattice(Lattice),
    /// An unordered choice among `choices >= 2` values.
    Categorical {
        /// The number of choices.
        choices: usize,
    },
}

/// The geometry of an int or stepped double parameter on the widened search scale.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Lattice {
    parameter: Parameter,
    count: u64,
    log: bool,
    /// Lower edge of the first cell on the (possibly logarithmic) scale.
    lower_edge: f64,
    /// Width of all cells together on that scale.
    width: f64,
    prior_sigma: f64,
}

/// The axes of a whole space, in parameter order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Encoding {
    axes: Vec<Axis>,
}

/// A point prepared for density evaluation: per parameter its unit coordinate, its cell, or its
/// choice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Coordinate {
    /// A fixed parameter.
    Fixed,
    /// A continuous coordinate in `[0, 1]`.
    Continuous(f64),
    /// A lattice value: its index and its cell `[lower, upper]` on the unit scale.
    Cell {
        /// The value's index in the lattice.
        index: u64,
        /// Lower edge of the cell.
        lower: f64,
        /// Upper edge of the cell.
        upper: f64,
    },
    /// A choice index.
    Choice(usize),
}

/// How numeric components get their standard deviations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bandwidth {
    /// The rule giving each component's width before scaling.
    pub(crate) rule: BandwidthRule,
    /// The multiplier applied to the rule's widths.
    pub(crate) factor: f64,
    /// The "magic clip" of Bergstra et al. (2011): no width below `clip_factor / min(n + 2,
    /// 100)` for `n` observations (hyperopt and Optuna use 1), none above the whole range.
    pub(crate) clip_factor: f64,
    /// On int and stepped parameters, no width below this many times the width of the cell of
    /// the value the component is centred on (0 for no floor). Without it, widths made for
    /// continuous parameters can be a fraction of a cell, so a component puts nearly all its
    /// mass on its own value and draws from it never try a neighbouring one.
    pub(crate) cell_floor: f64,
}

/// The rules for kernel widths.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum BandwidthRule {
    /// Each component's is the larger gap to its sorted neighbours (the prior's centre and the
    /// ends of the range included), as hyperopt and Optuna's univariate TPE do.
    Neighbours,
    /// One for all: `n^(-1 / (d + 4))`, Scott's rule for `n` points in `d` dimensions on a
    /// unit range, as Optuna's multivariate TPE does (with factor 0.2).
    Scott {
        /// The number of modelled dimensions.
        dimensions: usize,
    },
}

/// A Parzen estimator over a whole space.
#[derive(Debug, Clone)]
pub(crate) struct Parzen {
    /// Natural log of each component's normalized weight; observations first, prior last.
    log_weights: Vec<f64>,
    /// Cumulative normalized weights, for drawing a component.
    cumulative_weights: Vec<f64>,
    dimensions: Vec<DimensionModel>,
}

#[derive(Debug, Clone)]
enum DimensionModel {
    Fixed,
    Numeric(NumericComponents),
    Categorical(CategoricalComponents),
}

#[derive(Debug, Clone)]
struct NumericComponents {
    means: Vec<f64>,
    inverse_sigmas: Vec<f64>,
    /// `-ln(sigma sqrt(2 pi) Z)`: the log normalizer of the truncated density.
    log_normalizers: Vec<f64>,
    /// `-ln Z`: the log normalizer of the truncated mass.
    log_inverse_masses: Vec<f64>,
    /// `Phi(-mean / sigma)`: the CDF at the lower bound, for inverse-CDF sampling.
    lower_cdfs: Vec<f64>,
    /// `Z`: the mass inside `[0, 1]`.
    masses: Vec<f64>,
}

#[derive(Debug, Clone)]
struct CategoricalComponents {
    choices: usize,
    /// Each observation's choice; the prior component is last and has none.
    observed: Vec<usize>,
    log_hit: f64,
    log_miss: f64,
    /// The chance that a draw from an observation's kernel keeps its choice before smoothing.
    keep_probability: f64,
}

// === impl Encoding ===

impl Encoding {
    /// The axes of `space`.
    pub(crate) fn new(space: &SearchSpace) -> Encoding {
        Encoding {
            axes: space.parameters().iter().map(Axis::new).collect(),
        }
    }

    /// The axes, in parameter order.
    pub(crate) fn axes(&self) -> &[Axis] {
        &self.axes
    }

    /// How many parameters are modelled (not fixed).
    pub(crate) fn modelled_dimensions(&self) -> usize {
        self.axes
            .iter()
            .filter(|axis| !matches!(axis, Axis::Fixed(_)))
            .count()
    }

    /// Whether every parameter has finitely many values, so exact duplicates can happen.
    pub(crate) fn is_finite(&self) -> bool {
        self.axes
            .iter()
            .all(|axis| !matches!(axis, Axis::Continuous { .. }))
    }

    /// An observed assignment as coordinates, or `None` when its values do not fit the space
    /// (wrong kinds, a list index out of range, a non-finite number).
    pub(crate) fn encode(&self, values: &[Value]) -> Option<Vec<Coordinate>> {
        if values.len() != self.axes.len() {
            return None;
        }
        self.axes
            .iter()
            .zip(values)
            .map(|(axis, value)| axis.encode(*value))
            .collect()
    }

    /// Coordinates back to the feasible values they stand for.
    pub(crate) fn decode(&self, coordinates: &[Coordinate]) -> Vec<Value> {
        self.axes
            .iter()
            .zip(coordinates)
            .map(|(axis, coordinate)| axis.decode(*coordinate))
            .collect()
    }
}

// === impl Axis ===

impl Axis {
    fn new(parameter: &Parameter) -> Axis {
        let fixed = || Axis::Fixed(parameter.from_unit(0.5));
        let prior_sigma = |distribution: Distribution| match distribution {
            Distribution::Normal | Distribution::LogNormal => 1.0 / 6.0,
            Distribution::Uniform | Distribution::LogUniform => 1.0,
        };
        match &parameter.domain {
            Domain::Double {
                min,
                max,
                step: None,
                distribution,
            } => {
                if max > min {
                    Axis::Continuous {
                        parameter: parameter.clone(),
                        prior_sigma: prior_sigma(*distribution),
                    }
                } else {
                    fixed()
                }
            }
            Domain::Double { distribution, .. } | Domain::Int { distribution, .. } => {
                match parameter.cardinality() {
                    Some(count) if count >= 2 => {
                        Lattice::new(parameter, count, *distribution, prior_sigma(*distribution))
                            .map_or_else(fixed, Axis::Lattice)
                    }
                    _ => fixed(),
                }
            }
            Domain::Discrete { values, .. } if values.len() >= 2 => Axis::Categorical {
                choices: values.len(),
            },
            Domain::Categorical { choices } if choices.len() >= 2 => Axis::Categorical {
                choices: choices.len(),
            },
            Domain::Discrete { .. } | Domain::Categorical { .. } => Axis::Fixed(Value::Choice(0)),
        }
    }

    fn encode(&self, value: Value) -> Option<Coordinate> {
        match (self, value) {
            (Axis::Fixed(_), _) => Some(Coordinate::Fixed),
            (Axis::Continuous { parameter, .. }, Value::Double(x)) if x.is_finite() => {
                Some(Coordinate::Continuous(parameter.to_unit(value)))
            }
            (Axis::Lattice(lattice), Value::Int(x)) => Some(lattice.coordinate_of(x as f64)),
            (Axis::Lattice(lattice), Value::Double(x)) if x.is_finite() => {
                Some(lattice.coordinate_of(x))
            }
            (Axis::Categorical { choices }, Value::Choice(index)) if index < *choices => {
                Some(Coordinate::Choice(index))
            }
            _ => None,
        }
    }

    fn decode(&self, coordinate: Coordinate) -> Value {
        match (self, coordinate) {
            (Axis::Fixed(value), _) => *value,
            (Axis::Continuous { parameter, .. }, Coordinate::Continuous(u)) => {
                parameter.from_unit(u)
            }
            (Axis::Lattice(lattice), Coordinate::Cell { index, .. }) => {
                lattice.parameter.nth_value(index)
            }
            (Axis::Categorical { .. }, Coordinate::Choice(index)) => Value::Choice(index),
            // Coordinates are only ever made by their own axis, so a mismatch cannot occur;
            // the prior's centre is a feasible answer all the same.
            (Axis::Continuous { parameter, .. }, _) => parameter.from_unit(0.5),
            (Axis::Lattice(lattice), _) => lattice.parameter.from_unit(0.5),
            (Axis::Categorical { .. }, _) => Value::Choice(0),
        }
    }
}

// === impl Lattice ===

impl Lattice {
    fn new(
        parameter: &Parameter,
        count: u64,
        distribution: Distribution,
        prior_sigma: f64,
    ) -> Option<Lattice> {
        let mut lattice = Lattice {
            parameter: parameter.clone(),
            count,
            log: distribution.is_log(),
            lower_edge: 0.0,
            width: 1.0,
            prior_sigma,
        };
        let (lower_edge, _) = lattice.edges(0);
        let (_, upper_edge) = lattice.edges(count - 1);
        let width = upper_edge - lower_edge;
        if !(width.is_finite() && width > 0.0 && lower_edge.is_finite()) {
            return None;
        }
        lattice.lower_edge = lower_edge;
        lattice.width = width;
        Some(lattice)
    }

    /// The `index`-th value on the lattice's scale.
    fn position(&self, index: u64) -> f64 {
        self.scale(numeric(self.parameter.nth_value(index)))
    }

    fn scale(&self, x: f64) -> f64 {
        if self.log {
            x.max(f64::MIN_POSITIVE).ln()
        } else {
            x
        }
    }

    /// The cell of the `index`-th value on the lattice's scale: halfway to each neighbour, and
    /// as far beyond the ends as the nearest neighbour is.
    fn edges(&self, index: u64) -> (f64, f64) {
        let here = self.position(index);
        let lower = if index > 0 {
            (self.position(index - 1) + here) / 2.0
        } else {
            here - (self.position(1) - here) / 2.0
        };
        let upper = if index + 1 < self.count {
            (here + self.position(index + 1)) / 2.0
        } else {
            here + (here - self.position(index - 1)) / 2.0
        };
        (lower, upper)
    }

    fn to_unit(&self, scaled: f64) -> f64 {
        ((scaled - self.lower_edge) / self.width).clamp(0.0, 1.0)
    }

    /// The cell of the `index`-th value on the unit scale.
    fn cell(&self, index: u64) -> Coordinate {
        let (lower, upper) = self.edges(index);
        Coordinate::Cell {
            index,
            lower: self.to_unit(lower),
            upper: self.to_unit(upper),
        }
    }

    /// The value nearest to an observed number (which may lie off the lattice or outside it,
    /// for a history from an earlier space).
    fn coordinate_of(&self, x: f64) -> Coordinate {
        self.cell(self.index_at(self.scale(x)))
    }

    /// The index of the cell holding `scaled`, by bisection over the monotone cell edges.
    fn index_at(&self, scaled: f64) -> u64 {
        let (mut low, mut high) = (0_u64, self.count - 1);
        while low < high {
            let middle = low + (high - low) / 2;
            if self.edges(middle).1 < scaled {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }

    /// The value whose cell holds the unit coordinate `u`.
    fn cell_at_unit(&self, u: f64) -> Coordinate {
        self.cell(self.index_at(self.lower_edge + u.clamp(0.0, 1.0) * self.width))
    }

    /// The unit coordinate of the `index`-th value's centre.
    fn centre(&self, index: u64) -> f64 {
        self.to_unit(self.position(index))
    }
}

fn numeric(value: Value) -> f64 {
    match value {
        Value::Double(x) => x,
        Value::Int(x) => x as f64,
        Value::Choice(index) => index as f64,
    }
}

// === impl Parzen ===

impl Parzen {
    /// The estimator of `points` (coordinates from [`Encoding::encode`]) with the given
    /// per-point weights, plus a prior component of weight `prior_weight`.
    pub(crate) fn new(
        encoding: &Encoding,
        points: &[&[Coordinate]],
        weights: &[f64],
        prior_weight: f64,
        bandwidth: Bandwidth,
    ) -> Parzen {
        let total: f64 = weights.iter().sum::<f64>() + prior_weight;
        let mut log_weights = Vec::with_capacity(points.len() + 1);
        let mut cumulative_weights = Vec::with_capacity(points.len() + 1);
        let mut running = 0.0;
        for weight in weights.iter().chain(std::iter::once(&prior_weight)) {
            let normalized = weight / total;
            log_weights.push(normalized.max(f64::MIN_POSITIVE).ln());
            running += normalized;
            cumulative_weights.push(running);
        }
        let dimensions = encoding
            .axes()
            .iter()
            .enumerate()
            .map(|(dimension, axis)| {
                let coordinates = points.iter().map(|point| point[dimension]);
                match axis {
                    Axis::Fixed(_) => DimensionModel::Fixed,
                    Axis::Continuous { prior_sigma, .. } => {
                        let means = coordinates
                            .map(|coordinate| match coordinate {
                                Coordinate::Continuous(u) => u,
                                _ => 0.5,
                            })
                            .collect();
                        DimensionModel::Numeric(NumericComponents::new(
                            means,
                            *prior_sigma,
                            bandwidth,
                            &[],
                        ))
                    }
                    Axis::Lattice(lattice) => {
                        let (means, floors): (Vec<f64>, Vec<f64>) = coordinates
                            .map(|coordinate| match coordinate {
                                Coordinate::Cell {
                                    index,
                                    lower,
                                    upper,
                                } => (
                                    lattice.centre(index),
                                    bandwidth.cell_floor * (upper - lower),
                                ),
                                _ => (0.5, 0.0),
                            })
                            .unzip();
                        DimensionModel::Numeric(NumericComponents::new(
                            means,
                            lattice.prior_sigma,
                            bandwidth,
                            &floors,
                        ))
                    }
                    Axis::Categorical { choices } => {
                        let observed = coordinates
                            .map(|coordinate| match coordinate {
                                Coordinate::Choice(index) => index,
                                _ => 0,
                            })
                            .collect();
                        DimensionModel::Categorical(CategoricalComponents::new(
                            *choices,
                            observed,
                            prior_weight,
                        ))
                    }
                }
            })
            .collect();
        Parzen {
            log_weights,
            cumulative_weights,
            dimensions,
        }
    }

    /// The number of mixture components (observations and the prior).
    pub(crate) fn components(&self) -> usize {
        self.log_weights.len()
    }

    /// The log density of a point under the mixture of product kernels (multivariate TPE).
    /// `scratch` is reused between calls to save allocations.
    pub(crate) fn log_density_joint(&self, point: &[Coordinate], scratch: &mut Vec<f64>) -> f64 {
        scratch.clear();
        scratch.extend_from_slice(&self.log_weights);
        for (model, coordinate) in self.dimensions.iter().zip(point) {
            model.accumulate(*coordinate, scratch);
        }
        log_sum_exp(scratch)
    }

    /// The log density of one parameter's coordinate under that parameter's own mixture
    /// (univariate TPE models each parameter independently).
    pub(crate) fn log_density_of_dimension(
        &self,
        dimension: usize,
        coordinate: Coordinate,
        scratch: &mut Vec<f64>,
    ) -> f64 {
        let model = &self.dimensions[dimension];
        if matches!(model, DimensionModel::Fixed) {
            return 0.0;
        }
        scratch.clear();
        scratch.extend_from_slice(&self.log_weights);
        model.accumulate(coordinate, scratch);
        log_sum_exp(scratch)
    }

    /// A point drawn from the mixture of product kernels: one component, all coordinates.
    pub(crate) fn sample_joint(&self, encoding: &Encoding, rng: &mut impl Rng) -> Vec<Coordinate> {
        let component = self.sample_component(rng);
        encoding
            .axes()
            .iter()
            .zip(&self.dimensions)
            .map(|(axis, model)| model.sample(axis, component, rng))
            .collect()
    }

    /// One parameter's coordinate drawn from that parameter's own mixture.
    pub(crate) fn sample_dimension(
        &self,
        encoding: &Encoding,
        dimension: usize,
        rng: &mut impl Rng,
    ) -> Coordinate {
        let component = self.sample_component(rng);
        self.dimensions[dimension].sample(&encoding.axes()[dimension], component, rng)
    }

    fn sample_component(&self, rng: &mut impl Rng) -> usize {
        let draw = rng.random::<f64>();
        self.cumulative_weights
            .partition_point(|cumulative| *cumulative <= draw)
            .min(self.cumulative_weights.len() - 1)
    }
}

// === impl DimensionModel ===

impl DimensionModel {
    /// Adds each component's log kernel at `coordinate` to `totals`.
    fn accumulate(&self, coordinate: Coordinate, totals: &mut [f64]) {
        match (self, coordinate) {
            (DimensionModel::Numeric(numeric), Coordinate::Continuous(u)) => {
                for (index, total) in totals.iter_mut().enumerate() {
                    let z = (u - numeric.means[index]) * numeric.inverse_sigmas[index];
                    *total += numeric.log_normalizers[index] - 0.5 * z * z;
                }
            }
            (DimensionModel::Numeric(numeric), Coordinate::Cell { lower, upper, .. }) => {
                for (index, total) in totals.iter_mut().enumerate() {
                    let mean = numeric.means[index];
                    let inverse_sigma = numeric.inverse_sigmas[index];
                    *total += numeric.log_inverse_masses[index]
                        + log_normal_mass(
                            (lower - mean) * inverse_sigma,
                            (upper - mean) * inverse_sigma,
                        );
                }
            }
            (DimensionModel::Categorical(categorical), Coordinate::Choice(choice)) => {
                let prior = categorical.observed.len();
                for (index, total) in totals.iter_mut().enumerate() {
                    *total += if index == prior {
                        -(categorical.choices as f64).ln()
                    } else if categorical.observed[index] == choice {
                        categorical.log_hit
                    } else {
                        categorical.log_miss
                    };
                }
            }
            // Fixed parameters add nothing; mismatched coordinates cannot be made by the
            // encoding that built this model.
            _ => {}
        }
    }

    fn sample(&self, axis: &Axis, component: usize, rng: &mut impl Rng) -> Coordinate {
        match (self, axis) {
            (DimensionModel::Numeric(numeric), Axis::Continuous { .. }) => {
                Coordinate::Continuous(numeric.sample(component, rng))
            }
            (DimensionModel::Numeric(numeric), Axis::Lattice(lattice)) => {
                lattice.cell_at_unit(numeric.sample(component, rng))
            }
            (DimensionModel::Categorical(categorical), _) => {
                let keep = component < categorical.observed.len()
                    && rng.random::<f64>() < categorical.keep_probability;
                if keep {
                    Coordinate::Choice(categorical.observed[component])
                } else {
                    Coordinate::Choice(rng.random_range(0..categorical.choices))
                }
            }
            _ => Coordinate::Fixed,
        }
    }
}

// === impl NumericComponents ===

impl NumericComponents {
    /// Components at `means` plus the prior at 0.5 with `prior_sigma`. `floors`, empty or one
    /// per mean, holds each observation's narrowest width; the magic clip applies all the same.
    fn new(
        mut means: Vec<f64>,
        prior_sigma: f64,
        bandwidth: Bandwidth,
        floors: &[f64],
    ) -> NumericComponents {
        let observations = means.len();
        means.push(0.5);
        let mut sigmas = match bandwidth.rule {
            BandwidthRule::Neighbours => neighbour_gaps(&means),
            BandwidthRule::Scott { dimensions } => {
                let exponent = -1.0 / (dimensions.max(1) as f64 + 4.0);
                vec![(observations.max(1) as f64).powf(exponent); means.len()]
            }
        };
        let min_sigma = bandwidth.clip_factor / (observations as f64 + 2.0).min(100.0);
        for (index, sigma) in sigmas.iter_mut().enumerate() {
            let scaled = *sigma * bandwidth.factor;
            // `clamp` needs `floor <= 1`: no floor may exceed the widest kernel.
            let floor = floors
                .get(index)
                .map_or(min_sigma, |floor| floor.max(min_sigma))
                .min(1.0);
            *sigma = if scaled.is_finite() {
                scaled.clamp(floor, 1.0)
            } else {
                1.0
            };
        }
        sigmas[observations] = prior_sigma;
        let mut components = NumericComponents {
            inverse_sigmas: Vec::with_capacity(means.len()),
            log_normalizers: Vec::with_capacity(means.len()),
            log_inverse_masses: Vec::with_capacity(means.len()),
            lower_cdfs: Vec::with_capacity(means.len()),
            masses: Vec::with_capacity(means.len()),
            means,
        };
        for (mean, sigma) in components.means.iter().zip(&sigmas) {
            let lower_cdf = normal_cdf(-mean / sigma);
            // The mean lies in [0, 1], so at least half of the kernel's mass is inside.
            let mass = (normal_cdf((1.0 - mean) / sigma) - lower_cdf).max(f64::MIN_POSITIVE);
            components.inverse_sigmas.push(1.0 / sigma);
            components
                .log_normalizers
                .push(-(sigma.ln() + LN_SQRT_2PI + mass.ln()));
            components.log_inverse_masses.push(-mass.ln());
            components.lower_cdfs.push(lower_cdf);
            components.masses.push(mass);
        }
        components
    }

    /// A unit coordinate drawn from component `index`, by the inverse CDF of the truncated
    /// normal.
    fn sample(&self, index: usize, rng: &mut impl Rng) -> f64 {
        let probability = self.lower_cdfs[index] + rng.random::<f64>() * self.masses[index];
        let z = normal_quantile(probability.clamp(1e-300, 1.0 - 1e-16));
        (self.means[index] + z / self.inverse_sigmas[index]).clamp(0.0, 1.0)
    }
}

/// Each mean's larger gap to its sorted neighbours, the ends 0 and 1 counting as neighbours
/// except for the outermost means, which take their one inner gap (Optuna's univariate rule
/// with `consider_endpoints = False`).
fn neighbour_gaps(means: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..means.len()).collect();
    order.sort_by(|a, b| means[*a].total_cmp(&means[*b]));
    let mut sorted = Vec::with_capacity(means.len() + 2);
    sorted.push(0.0);
    sorted.extend(order.iter().map(|index| means[*index]));
    sorted.push(1.0);
    let count = means.len();
    let mut gaps = vec![1.0; count];
    for (rank, index) in order.iter().enumerate() {
        let left = sorted[rank + 1] - sorted[rank];
        let right = sorted[rank + 2] - sorted[rank + 1];
        gaps[*index] = if count >= 2 && rank == 0 {
            right
        } else if count >= 2 && rank == count - 1 {
            left
        } else {
            left.max(right)
        };
    }
    gaps
}

// === impl CategoricalComponents ===

impl CategoricalComponents {
    fn new(choices: usize, observed: Vec<usize>, prior_weight: f64) -> CategoricalComponents {
        let smoothing = prior_weight / (observed.len() as f64 + 1.0);
        let denominator = 1.0 + choices as f64 * smoothing;
        CategoricalComponents {
            choices,
            log_hit: ((1.0 + smoothing) / denominator).ln(),
            log_miss: (smoothing / denominator).max(f64::MIN_POSITIVE).ln(),
            keep_probability: 1.0 / denominator,
            observed,
        }
    }
}

// === numeric helpers ===

/// `ln(sum(exp(x)))` without overflow; `-inf` for an empty or all-`-inf` input.
fn log_sum_exp(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + values.iter().map(|x| (x - max).exp()).sum::<f64>().ln()
}

/// `ln(Phi(b) - Phi(a))` for standardized `a <= b`, accurate in the tails and for narrow cells.
fn log_normal_mass(a: f64, b: f64) -> f64 {
    let width = (b - a).max(f64::MIN_POSITIVE);
    if width < MIDPOINT_RULE_WIDTH {
        let middle = 0.5 * (a + b);
        return -0.5 * middle * middle - LN_SQRT_2PI + width.ln();
    }
    // Subtract CDFs on the side where both are small, so no precision is lost to `1 - x`.
    let mass = if a > 0.0 {
        normal_cdf(-a) - normal_cdf(-b)
    } else if b < 0.0 {
        normal_cdf(b) - normal_cdf(a)
    } else {
        1.0 - normal_cdf(a) - normal_cdf(-b)
    };
    if mass > 1e-300 {
        mass.ln()
    } else {
        // Beyond ~37 standard deviations: the tail mass is about pdf(z) / z (Mills' ratio).
        let nearest = if a > 0.0 { a } else { -b };
        -0.5 * nearest * nearest - LN_SQRT_2PI - nearest.max(1.0).ln()
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::space::{Assignment, ParameterType, RawParameter};

    /// Type, min, max, step, distribution and list of one test parameter.
    type Spec<'a> = (
        ParameterType,
        &'a str,
        &'a str,
        &'a str,
        Option<Distribution>,
        &'a [&'a str],
    );

    fn space(parameters: &[Spec<'_>]) -> SearchSpace {
        let raw: Vec<RawParameter> = parameters
            .iter()
            .enumerate()
            .map(
                |(index, (kind, min, max, step, distribution, list))| RawParameter {
                    name: format!("p{index}"),
                    parameter_type: Some(*kind),
                    min: min.to_string(),
                    max: max.to_string(),
                    step: step.to_string(),
                    list: list.iter().map(|item| item.to_string()).collect(),
                    distribution: *distribution,
                    condition: None,
                },
            )
            .collect();
        SearchSpace::parse(&raw).expect("valid test space")
    }

    fn estimator(encoding: &Encoding, points: &[Vec<Coordinate>], rule: BandwidthRule) -> Parzen {
        let slices: Vec<&[Coordinate]> = points.iter().map(|point| point.as_slice()).collect();
        let bandwidth = Bandwidth {
            rule,
            factor: 1.0,
            clip_factor: 1.0,
            cell_floor: 0.0,
        };
        Parzen::new(encoding, &slices, &vec![1.0; points.len()], 1.0, bandwidth)
    }

    #[test]
    fn continuous_density_integrates_to_one_on_the_unit_range() {
        let space = space(&[(ParameterType::Double, "-3", "5", "", None, &[])]);
        let encoding = Encoding::new(&space);
        let points: Vec<Vec<Coordinate>> = [0.0, 0.1, 0.12, 0.9, 1.0]
            .iter()
            .map(|u| vec![Coordinate::Continuous(*u)])
            .collect();
        for rule in [
            BandwidthRule::Neighbours,
            BandwidthRule::Scott { dimensions: 1 },
        ] {
            let parzen = estimator(&encoding, &points, rule);
            let mut scratch = Vec::new();
            let steps = 20_000;
            let integral: f64 = (0..steps)
                .map(|step| {
                    let u = (step as f64 + 0.5) / steps as f64;
                    parzen
                        .log_density_joint(&[Coordinate::Continuous(u)], &mut scratch)
                        .exp()
                        / steps as f64
                })
                .sum();
            assert!((integral - 1.0).abs() < 1e-3, "{rule:?}: {integral}");
            let per_dimension =
                parzen.log_density_of_dimension(0, Coordinate::Continuous(0.3), &mut scratch);
            let joint = parzen.log_density_joint(&[Coordinate::Continuous(0.3)], &mut scratch);
            assert!((per_dimension - joint).abs() < 1e-12);
        }
    }

    #[test]
    fn lattice_and_categorical_masses_sum_to_one() {
        let space = space(&[
            (
                ParameterType::Int,
                "1",
                "64",
                "",
                Some(Distribution::LogUniform),
                &[],
            ),
            (ParameterType::Double, "0", "1", "0.25", None, &[]),
            (
                ParameterType::Categorical,
                "",
                "",
                "",
                None,
                &["a", "b", "c"],
            ),
        ]);
        let encoding = Encoding::new(&space);
        let points: Vec<Vec<Coordinate>> = [
            [Value::Int(1), Value::Double(0.25), Value::Choice(2)],
            [Value::Int(3), Value::Double(1.0), Value::Choice(2)],
            [Value::Int(64), Value::Double(0.0), Value::Choice(0)],
        ]
        .iter()
        .map(|values| encoding.encode(values).expect("fits the space"))
        .collect();
        let parzen = estimator(&encoding, &points, BandwidthRule::Neighbours);
        let mut scratch = Vec::new();
        let mut mass = |dimension: usize, coordinate: Coordinate| {
            parzen
                .log_density_of_dimension(dimension, coordinate, &mut scratch)
                .exp()
        };
        let Axis::Lattice(ints) = &encoding.axes()[0] else {
            panic!("int parameter is a lattice")
        };
        let total: f64 = (0..64).map(|index| mass(0, ints.cell(index))).sum();
        assert!((total - 1.0).abs() < 1e-3, "int total {total}");
        let Axis::Lattice(steps) = &encoding.axes()[1] else {
            panic!("stepped double is a lattice")
        };
        let total: f64 = (0..5).map(|index| mass(1, steps.cell(index))).sum();
        assert!((total - 1.0).abs() < 1e-6, "stepped total {total}");
        let total: f64 = (0..3)
            .map(|choice| mass(2, Coordinate::Choice(choice)))
            .sum();
        assert!((total - 1.0).abs() < 1e-12, "categorical total {total}");
    }

    #[test]
    fn the_cell_floor_keeps_mass_on_neighbouring_lattice_values() {
        // Eight ints: each cell is an eighth of the unit range. Ten observations of one value
        // under multivariate TPE's narrow widths give kernels of about a quarter of a cell.
        let space = space(&[(ParameterType::Int, "1", "8", "", None, &[])]);
        let encoding = Encoding::new(&space);
        let Axis::Lattice(lattice) = &encoding.axes()[0] else {
            panic!("int parameter is a lattice")
        };
        let points = vec![vec![lattice.cell(3)]; 10];
        let slices: Vec<&[Coordinate]> = points.iter().map(|point| point.as_slice()).collect();
        let masses = |cell_floor: f64| {
            let bandwidth = Bandwidth {
                rule: BandwidthRule::Scott { dimensions: 1 },
                factor: 0.05,
                clip_factor: 0.4,
                cell_floor,
            };
            // A negligible prior, so the masses are the observations' kernels'.
            let parzen = Parzen::new(&encoding, &slices, &[1.0; 10], 1e-9, bandwidth);
            let mut scratch = Vec::new();
            (0..8)
                .map(|index| {
                    parzen
                        .log_density_of_dimension(0, lattice.cell(index), &mut scratch)
                        .exp()
                })
                .collect::<Vec<f64>>()
        };
        let unfloored = masses(0.0);
        assert!(unfloored[3] > 0.9, "{unfloored:?}");
        // Half a cell: the value keeps the mass within one standard deviation, 68%, and each
        // neighbour gets most of the rest.
        let floored = masses(0.5);
        assert!((floored[3] - 0.683).abs() < 0.01, "{floored:?}");
        assert!(floored[2] > 0.14 && floored[4] > 0.14, "{floored:?}");
        assert!((floored.iter().sum::<f64>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn lattice_values_round_trip_and_samples_are_feasible() {
        let space = space(&[
            (
                ParameterType::Int,
                "2",
                "1000",
                "7",
                Some(Distribution::LogNormal),
                &[],
            ),
            (
                ParameterType::Double,
                "-1",
                "1",
                "0.1",
                Some(Distribution::Normal),
                &[],
            ),
            (
                ParameterType::Discrete,
                "",
                "",
                "",
                None,
                &["1", "10", "100"],
            ),
            (ParameterType::Categorical, "", "", "", None, &["only"]),
            (
                ParameterType::Double,
                "0.001",
                "0.001",
                "",
                Some(Distribution::LogUniform),
                &[],
            ),
        ]);
        let encoding = Encoding::new(&space);
        assert!(matches!(encoding.axes()[3], Axis::Fixed(Value::Choice(0))));
        assert!(matches!(encoding.axes()[4], Axis::Fixed(Value::Double(_))));
        assert_eq!(encoding.modelled_dimensions(), 3);
        for parameter_index in 0..2 {
            let parameter = &space.parameters()[parameter_index];
            let count = parameter.cardinality().expect("lattice");
            for index in 0..count {
                let mut values = vec![
                    Value::Int(2),
                    Value::Double(0.0),
                    Value::Choice(0),
                    Value::Choice(0),
                    Value::Double(0.001),
                ];
                values[parameter_index] = parameter.nth_value(index);
                let point = encoding.encode(&values).expect("feasible values encode");
                assert_eq!(
                    encoding.decode(&point)[parameter_index],
                    values[parameter_index]
                );
            }
        }
        let observed = encoding
            .encode(&[
                Value::Int(9),
                Value::Double(0.3),
                Value::Choice(1),
                Value::Choice(0),
                Value::Double(0.001),
            ])
            .expect("fits");
        let parzen = estimator(
            &encoding,
            &[observed],
            BandwidthRule::Scott { dimensions: 3 },
        );
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for _ in 0..2000 {
            let values = encoding.decode(&parzen.sample_joint(&encoding, &mut rng));
            assert!(space.contains(&Assignment { values }));
        }
    }

    #[test]
    fn values_that_do_not_fit_are_not_encoded() {
        let space = space(&[
            (ParameterType::Double, "0", "1", "", None, &[]),
            (ParameterType::Categorical, "", "", "", None, &["a", "b"]),
        ]);
        let encoding = Encoding::new(&space);
        assert!(
            encoding
                .encode(&[Value::Double(f64::NAN), Value::Choice(0)])
                .is_none()
        );
        assert!(
            encoding
                .encode(&[Value::Double(0.5), Value::Choice(2)])
                .is_none()
        );
        assert!(
            encoding
                .encode(&[Value::Int(1), Value::Choice(0)])
                .is_none()
        );
        assert!(encoding.encode(&[Value::Double(0.5)]).is_none());
        // Out-of-bounds numbers (an earlier, wider space) are clamped, not dropped.
        assert_eq!(
            encoding.encode(&[Value::Double(7.0), Value::Choice(1)]),
            Some(vec![Coordinate::Continuous(1.0), Coordinate::Choice(1)])
        );
    }

    #[test]
    fn normal_masses_are_accurate_and_finite_in_the_tails() {
        let direct = |a: f64, b: f64| (normal_cdf(b) - normal_cdf(a)).ln();
        for (a, b) in [
            (-1.0, 1.0),
            (-0.3, 2.0),
            (0.5, 0.9),
            (-3.0, -0.2),
            (1.0, 1.04),
        ] {
            assert!(
                (log_normal_mass(a, b) - direct(a, b)).abs() < 5e-3,
                "[{a}, {b}]"
            );
        }
        for (a, b) in [(40.0, 41.0), (-900.0, -800.0), (1e6, 1e6 + 1.0), (3.0, 3.0)] {
            let value = log_normal_mass(a, b);
            assert!(value.is_finite() && value < 0.0, "[{a}, {b}]: {value}");
        }
        assert!(log_normal_mass(10.0, 11.0) < log_normal_mass(9.0, 10.0));
        assert!((log_sum_exp(&[0.0, 0.0]) - 2.0_f64.ln()).abs() < 1e-12);
        assert_eq!(log_sum_exp(&[]), f64::NEG_INFINITY);
    }

    #[test]
    fn neighbour_gaps_follow_the_sorted_order() {
        // Sorted: 0.1, 0.5 (the prior), 0.8; ends 0 and 1.
        let gaps = neighbour_gaps(&[0.8, 0.1, 0.5]);
        assert_eq!(gaps.len(), 3);
        assert!(
            (gaps[1] - 0.4).abs() < 1e-12,
            "outermost takes its inner gap"
        );
        assert!(
            (gaps[0] - 0.3).abs() < 1e-12,
            "outermost takes its inner gap"
        );
        assert!((gaps[2] - 0.4).abs() < 1e-12, "inner takes the larger gap");
        assert_eq!(neighbour_gaps(&[0.5]), vec![0.5]);
    }
}
