//! The generational machinery the genetic algorithms for several objectives share: NSGA-II
//! ([`crate::nsga2`]) and NSGA-III ([`crate::nsga3`]) differ only in how they choose the
//! parents of a generation; the settings, the generations read from the history, the binary
//! tournament and the variation operators (Deb et al., "A Fast and Elitist Multiobjective
//! Genetic Algorithm: NSGA-II", IEEE TEC 2002) live here once.
//!
//! # Generations from the history
//!
//! Trials are taken in generations of `population_size` by their place in the history (the
//! `n`-th trial belongs to generation `n / population_size`), so the algorithms keep no state
//! of their own and a restarted or replicated suggestion service continues the same run.
//! Generation 0 is drawn from the priors. The parents of generation `g` are chosen by the
//! algorithm's selection among the finished trials of the generations before it (the pool);
//! as both selections are elitist, choosing from every finished trial gives the same parents
//! as choosing from the previous parents and their offspring, up to ties. A selection that
//! breaks ties at random draws from a stream seeded by `random_state` and the trials before
//! the generation, so every call of the same generation sees the same parents.
//!
//! # Variation
//!
//! Each child comes from two parents chosen by binary tournament (the lower rank wins, then the
//! larger preference: NSGA-II's crowding distance). With probability `crossover_probability`,
//! numeric parameters (double, int, discrete) are recombined by simulated binary crossover
//! (SBX, Deb & Agrawal 1995, the bounded form of Deb's NSGA-II code, each variable with
//! probability 0.5) on the unit search scale, and categorical ones by uniform crossover. Each
//! parameter then mutates with probability `mutation_probability` (default `2 / parameters`):
//! numeric ones by polynomial mutation, categorical ones by a fresh draw from the prior.
//!
//! Pending, failed and incomplete trials (an objective or constrained metric missing) are not
//! parents.
//!
//! # Settings
//!
//! | setting | default | rule |
//! | --- | --- | --- |
//! | `population_size` | 30 | integer `>= 2` |
//! | `crossover_probability` | 0.9 | number in `[0, 1]` |
//! | `mutation_probability` | `2 / parameters`, at most 1 | number in `[0, 1]` |
//! | `crossover_eta` | 20 | number `> 0`: SBX's distribution index (larger keeps children nearer their parents) |
//! | `mutation_eta` | 20 | number `> 0`: polynomial mutation's distribution index |
//! | `random_state` | 0 | integer `>= 0` |

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::SuggestError;
use crate::algorithm::{SuggestRequest, Suggestions};
use crate::history::observed_outcomes;
use crate::objective::Outcome;
use crate::seed::rng_for;
use crate::settings::{SettingsError, SettingsReader};
use crate::space::{Assignment, Domain, SearchSpace, Value};

/// The settings every genetic algorithm here has.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneticSettings {
    /// Trials per generation.
    pub population_size: usize,
    /// Chance that a child's parents are recombined rather than one copied.
    pub crossover_probability: f64,
    /// Chance that each parameter mutates; `None` for `2 / parameters` (at most 1).
    pub mutation_probability: Option<f64>,
    /// SBX's distribution index.
    pub crossover_eta: f64,
    /// Polynomial mutation's distribution index.
    pub mutation_eta: f64,
    /// Seed of the random stream (see [`crate::seed`]).
    pub random_state: Option<u64>,
}

/// One parent chosen by a selection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Selected {
    /// Its position in the pool handed to the selection.
    pub(crate) member: usize,
    /// The front it is on (0 is best); the tournament's first criterion.
    pub(crate) rank: usize,
    /// The tournament's second criterion, larger preferred (NSGA-II's crowding distance).
    pub(crate) preference: f64,
}

impl GeneticSettings {
    /// Reads the shared settings from `reader`, which the caller finishes after reading its
    /// own.
    pub(crate) fn parse(reader: &mut SettingsReader<'_>) -> Result<GeneticSettings, SettingsError> {
        let population_size = reader
            .parse::<usize>("population_size", "must be an integer >= 2", |size| {
                *size >= 2
            })?
            .unwrap_or(30);
        let probability = |p: &f64| (0.0..=1.0).contains(p);
        let crossover_probability = reader
            .parse::<f64>(
                "crossover_probability",
                "must be a number in [0, 1]",
                probability,
            )?
            .unwrap_or(0.9);
        let mutation_probability = reader.parse::<f64>(
            "mutation_probability",
            "must be a number in [0, 1]",
            probability,
        )?;
        let positive = |eta: &f64| eta.is_finite() && *eta > 0.0;
        let crossover_eta = reader
            .parse::<f64>("crossover_eta", "must be a finite number > 0", positive)?
            .unwrap_or(20.0);
        let mutation_eta = reader
            .parse::<f64>("mutation_eta", "must be a finite number > 0", positive)?
            .unwrap_or(20.0);
        let random_state = reader.random_state()?;
        Ok(GeneticSettings {
            population_size,
            crossover_probability,
            mutation_probability,
            crossover_eta,
            mutation_eta,
            random_state,
        })
    }

    /// The suggestions of the algorithm `name` for `request`: priors for generation 0, then
    /// children of the parents `select` chooses from each generation's pool. `select` gets the
    /// pool's outcomes and a random stream fixed for the generation, and returns at most
    /// `population_size` parents.
    pub(crate) fn suggest(
        &self,
        name: &str,
        request: &SuggestRequest<'_>,
        select: impl Fn(&[&Outcome], &mut ChaCha8Rng) -> Vec<Selected>,
    ) -> Result<Suggestions, SuggestError> {
        let mut rng = rng_for(self.random_state, request.trials, name);
        let space = request.space;
        let observed = observed_outcomes(request.trials, request.objective);
        let mut parents_for: Option<(usize, Parents)> = None;
        let mut assignments = Vec::with_capacity(request.count);
        for offset in 0..request.count {
            request.cancel.check()?;
            let generation = (request.trials.len() + offset) / self.population_size;
            let first_of_generation = generation * self.population_size;
            let pool: Vec<(usize, &Outcome)> = observed
                .iter()
                .filter(|(index, _)| *index < first_of_generation)
                .map(|(index, outcome)| (*index, outcome))
                .collect();
            if pool.len() < 2 {
                let quantiles: Vec<f64> = (0..space.len()).map(|_| rng.random()).collect();
                assignments.push(space.from_quantiles(&quantiles));
                continue;
            }
            // A batch may straddle generations; the parents are selected once per generation.
            if parents_for.as_ref().map(|(g, _)| *g) != Some(generation) {
                parents_for = None;
            }
            let (_, parents) = parents_for.get_or_insert_with(|| {
                // The trials before the generation fix its selection's stream, whichever call
                // of the generation computes it.
                let prefix = &request.trials[..first_of_generation.min(request.trials.len())];
                let mut selection_rng =
                    rng_for(self.random_state, prefix, &format!("{name} selection"));
                let outcomes: Vec<&Outcome> = pool.iter().map(|(_, outcome)| *outcome).collect();
                let chosen = select(&outcomes, &mut selection_rng);
                (generation, Parents::new(space, request, &pool, &chosen))
            });
            assignments.push(self.child(space, parents, &mut rng));
        }
        Ok(Suggestions::from_assignments(assignments))
    }

    fn child(&self, space: &SearchSpace, parents: &Parents, rng: &mut impl Rng) -> Assignment {
        let first = &parents.genes[parents.tournament(rng)];
        let second = &parents.genes[parents.tournament(rng)];
        let crossover = rng.random::<f64>() < self.crossover_probability;
        let mutation_probability = self
            .mutation_probability
            .unwrap_or((2.0 / space.len() as f64).min(1.0));
        let values = space
            .parameters()
            .iter()
            .zip(first.iter().zip(second))
            .map(|(parameter, (a, b))| {
                let gene = match (a, b) {
                    (Gene::Unit(x), Gene::Unit(y)) => {
                        let x = if crossover && rng.random::<f64>() < 0.5 {
                            sbx(*x, *y, self.crossover_eta, rng)
                        } else {
                            *x
                        };
                        if rng.random::<f64>() < mutation_probability {
                            Gene::Unit(polynomial_mutation(x, self.mutation_eta, rng))
                        } else {
                            Gene::Unit(x)
                        }
                    }
                    _ => {
                        let picked = if crossover && rng.random::<f64>() < 0.5 {
                            *b
                        } else {
                            *a
                        };
                        if rng.random::<f64>() < mutation_probability {
                            Gene::Unit(rng.random())
                        } else {
                            picked
                        }
                    }
                };
                match gene {
                    Gene::Choice(index) => Value::Choice(index),
                    // A categorical parameter's fresh draw comes through its prior quantile.
                    Gene::Unit(u) if matches!(parameter.domain, Domain::Categorical { .. }) => {
                        parameter.from_quantile(u)
                    }
                    Gene::Unit(u) => parameter.from_unit(u),
                }
            })
            .collect();
        Assignment { values }
    }
}

/// The parents of one generation, each with its rank and preference.
#[derive(Debug)]
struct Parents {
    /// Each parent's values on the unit search scale (categorical values kept as chosen).
    genes: Vec<Vec<Gene>>,
    /// The front each parent is on (0 is best).
    ranks: Vec<usize>,
    /// Each parent's preference within its front.
    preferences: Vec<f64>,
}

/// One parameter of a parent or child.
#[derive(Debug, Clone, Copy)]
enum Gene {
    /// A numeric parameter on the unit search scale.
    Unit(f64),
    /// A categorical parameter's choice.
    Choice(usize),
}

impl Parents {
    fn new(
        space: &SearchSpace,
        request: &SuggestRequest<'_>,
        pool: &[(usize, &Outcome)],
        chosen: &[Selected],
    ) -> Parents {
        let genes = chosen
            .iter()
            .map(|selected| {
                let assignment = &request.trials[pool[selected.member].0].assignment;
                space
                    .parameters()
                    .iter()
                    .zip(&assignment.values)
                    .map(|(parameter, value)| match (&parameter.domain, value) {
                        (Domain::Categorical { .. }, Value::Choice(index)) => Gene::Choice(*index),
                        _ => Gene::Unit(parameter.to_unit(*value)),
                    })
                    .collect()
            })
            .collect();
        Parents {
            genes,
            ranks: chosen.iter().map(|selected| selected.rank).collect(),
            preferences: chosen.iter().map(|selected| selected.preference).collect(),
        }
    }

    /// Binary tournament: of two parents drawn at random, the lower rank, then the larger
    /// preference; a tie goes to the first drawn.
    fn tournament(&self, rng: &mut impl Rng) -> usize {
        let size = self.genes.len();
        let (a, b) = (rng.random_range(0..size), rng.random_range(0..size));
        let a_wins = self.ranks[a] < self.ranks[b]
            || (self.ranks[a] == self.ranks[b] && self.preferences[a] >= self.preferences[b]);
        if a_wins { a } else { b }
    }
}

/// One child of simulated binary crossover of `x` and `y` on `[0, 1]` (Deb's bounded form):
/// the spread factor follows a polynomial of index `eta`, truncated so the child stays inside.
fn sbx(x: f64, y: f64, eta: f64, rng: &mut impl Rng) -> f64 {
    if (x - y).abs() < 1e-14 {
        return x;
    }
    let (low, high) = if x < y { (x, y) } else { (y, x) };
    let u: f64 = rng.random();
    let spread = |beta: f64| {
        let alpha = 2.0 - beta.powf(-(eta + 1.0));
        if u <= 1.0 / alpha {
            (u * alpha).powf(1.0 / (eta + 1.0))
        } else {
            (1.0 / (2.0 - u * alpha)).powf(1.0 / (eta + 1.0))
        }
    };
    let gap = high - low;
    let toward_zero = 0.5 * ((low + high) - spread(1.0 + 2.0 * low / gap) * gap);
    let toward_one = 0.5 * ((low + high) + spread(1.0 + 2.0 * (1.0 - high) / gap) * gap);
    let child = if rng.random::<f64>() < 0.5 {
        toward_zero
    } else {
        toward_one
    };
    child.clamp(0.0, 1.0)
}

/// Polynomial mutation of `x` on `[0, 1]` (Deb's bounded form), with distribution index `eta`.
fn polynomial_mutation(x: f64, eta: f64, rng: &mut impl Rng) -> f64 {
    let u: f64 = rng.random();
    let power = 1.0 / (eta + 1.0);
    let delta = if u < 0.5 {
        let value = 2.0 * u + (1.0 - 2.0 * u) * (1.0 - x).powf(eta + 1.0);
        value.powf(power) - 1.0
    } else {
        let value = 2.0 * (1.0 - u) + 2.0 * (u - 0.5) * x.powf(eta + 1.0);
        1.0 - value.powf(power)
    };
    (x + delta).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn operators_stay_in_the_unit_interval_and_near_their_parents() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut spread = 0.0;
        for _ in 0..2000 {
            let child = sbx(0.4, 0.6, 20.0, &mut rng);
            assert!((0.0..=1.0).contains(&child));
            spread += (child - 0.5).abs();
            let mutated = polynomial_mutation(0.95, 20.0, &mut rng);
            assert!((0.0..=1.0).contains(&mutated));
        }
        // With index 20 the children stay close to the parents at 0.4 and 0.6.
        assert!(spread / 2000.0 < 0.15, "mean spread {}", spread / 2000.0);
    }
}
