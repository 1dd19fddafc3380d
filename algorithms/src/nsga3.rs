//! NSGA-III (`nsga3`): the reference-point genetic algorithm for three or more objectives of
//! Deb and Jain, "An Evolutionary Many-Objective Optimization Algorithm Using Reference-Point
//! Based Nondominated Sorting Approach, Part I: Solving Problems With Box Constraints" (IEEE
//! TEC 18(4), 2014), with the constraint handling of its Part II (Jain and Deb, same issue):
//! Deb's constraint domination decides the fronts.
//!
//! # Method
//!
//! Generations, the binary tournament and the variation operators are [`crate::genetic`]'s,
//! shared with NSGA-II. What differs is how the parents are chosen from the pool of finished
//! trials. With many objectives nearly every trial is non-dominated, so NSGA-II's crowding
//! distance decides almost everything and spreads the population poorly; NSGA-III spreads it
//! along a set of reference directions instead:
//!
//! 1. Reference points: Das and Dennis's structured points on the unit simplex ("Normal-
//!    Boundary Intersection", SIAM J. Optim. 1998), every point whose coordinates are
//!    multiples of `1 / divisions` summing to 1: `C(divisions + M - 1, M - 1)` points for `M`
//!    objectives ([`das_dennis_points`]).
//! 2. Fronts: the pool is ranked by the non-dominated sort under constraint domination
//!    (feasible trials by Pareto rank, then infeasible ones by their total violation), and
//!    whole fronts are taken while they fit in `population_size`. When one fits only in part
//!    (the last front), the fronts taken so far and it form `S`.
//! 3. Normalisation ([`Normalization`]): the ideal point is the smallest loss of `S` in each
//!    objective; the extreme point of each objective is the member of `S` minimising the
//!    achievement scalarising function `max_i f'_i / w_i` with weight 1 on that objective and
//!    `1e-6` on the others (`f'` the losses less the ideal point); the intercepts are where
//!    the hyperplane through the `M` extreme points cuts the axes. When that hyperplane is
//!    degenerate (extreme points not independent, or an intercept not finite or below `1e-6`),
//!    the intercepts fall back to the worst loss of the first front in each objective (then to
//!    the worst of `S`, then to 1), as pymoo does. Losses are translated by the ideal point and
//!    divided by the intercepts.
//! 4. Association ([`associate`]): each member of `S` joins the reference line (through the
//!    origin and a reference point) nearest to it by perpendicular distance.
//! 5. Niching ([`niche_select`]): each reference point's niche count is the number of members
//!    already taken (the whole fronts) that joined it. Until the population is full: of the
//!    reference points with last-front members still unpicked, one with the smallest niche
//!    count is drawn at random; it takes its nearest unpicked member if its niche is empty,
//!    else a random one; its count grows by one.
//!
//! Parents carry their front as rank; the tournament prefers the lower rank and breaks ties at
//! random. The random draws of niching come from a stream fixed per generation (see
//! [`crate::genetic`]).
//!
//! NSGA-III is meant for three or more objectives; with two it works too (the reference
//! points are spread on a segment), and with one it reduces to an elitist genetic algorithm.
//!
//! # Settings
//!
//! Those of [`crate::genetic`] (`population_size` 30, `crossover_probability` 0.9,
//! `mutation_probability` `2 / parameters`, `crossover_eta` 20, `mutation_eta` 20,
//! `random_state`), and:
//!
//! | setting | default | rule |
//! | --- | --- | --- |
//! | `divisions` | the largest giving at most `population_size` reference points for the experiment's objectives (at least 1): 6 for 3 objectives and a population of 30 (28 points), 3 for 4 (20), 2 for 5 (15) | integer `>= 1` giving at most 10,000 reference points |
//!
//! Deb and Jain pair the population with the reference points (a population of about as many
//! members as points: 91 points and 92 members for three objectives with 12 divisions), so that
//! each direction can hold one member; pymoo leaves the choice to the user and Optuna fixes 3
//! divisions whatever the objectives. With a budget of a few hundred trials a population of 92
//! leaves two generations, so here the population stays NSGA-II's and the divisions follow it.

use rand::Rng;

use crate::SuggestError;
use crate::algorithm::{BuildContext, SearchAlgorithm, SuggestRequest, Suggestions};
use crate::genetic::{GeneticSettings, Selected};
use crate::objective::Outcome;
use crate::pareto::{constrained_dominates, non_dominated_sort};
use crate::settings::{Setting, SettingsError, SettingsReader};

/// Katib-style name of the algorithm.
pub const NAME: &str = "nsga3";

/// The most reference points a `divisions` setting may give: beyond it, association costs more
/// than the rest of a suggestion.
pub const MAX_REFERENCE_POINTS: usize = 10_000;

/// NSGA-III with its settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Nsga3 {
    /// The population, variation and seed settings.
    pub settings: GeneticSettings,
    /// The reference points' divisions; `None` for [`default_divisions`].
    pub divisions: Option<usize>,
}

/// Builds NSGA-III from its settings, checking `divisions` against the experiment's
/// objectives.
pub fn build(
    settings: &[Setting],
    context: &BuildContext<'_>,
) -> Result<Box<dyn SearchAlgorithm>, SettingsError> {
    let mut reader = SettingsReader::new(NAME, settings);
    let genetic = GeneticSettings::parse(&mut reader)?;
    let objectives = context.objective.objective_count();
    let rule = format!(
        "must be an integer >= 1 giving at most {MAX_REFERENCE_POINTS} reference points for \
         {objectives} objectives"
    );
    let divisions = reader.parse::<usize>("divisions", &rule, |divisions| {
        *divisions >= 1
            && reference_point_count(objectives, *divisions)
                .is_some_and(|count| count <= MAX_REFERENCE_POINTS)
    })?;
    reader.finish()?;
    Ok(Box::new(Nsga3 {
        settings: genetic,
        divisions,
    }))
}

impl SearchAlgorithm for Nsga3 {
    fn name(&self) -> &'static str {
        NAME
    }

    fn suggest(&self, request: &SuggestRequest<'_>) -> Result<Suggestions, SuggestError> {
        let population_size = self.settings.population_size;
        let objectives = request.objective.objective_count();
        let divisions = self
            .divisions
            .unwrap_or_else(|| default_divisions(objectives, population_size));
        let reference_points = das_dennis_points(objectives, divisions);
        self.settings.suggest(NAME, request, |outcomes, rng| {
            select_parents(outcomes, population_size, &reference_points, rng)
        })
    }
}

/// The number of Das and Dennis points for `objectives` and `divisions`:
/// `C(divisions + objectives - 1, objectives - 1)`, or `None` if it does not fit a `usize`.
pub fn reference_point_count(objectives: usize, divisions: usize) -> Option<usize> {
    if objectives == 0 {
        return Some(0);
    }
    // C(n, k) built up as a product of exact binomials C(n - k + i, i).
    let k = objectives - 1;
    let n = divisions.checked_add(k)?;
    let mut count: u128 = 1;
    for i in 1..=k {
        count = count.checked_mul((n - k + i) as u128)? / i as u128;
    }
    usize::try_from(count).ok()
}

/// The default divisions: the largest giving at most `population_size` reference points for
/// `objectives`, at least 1.
pub fn default_divisions(objectives: usize, population_size: usize) -> usize {
    if objectives <= 1 {
        return 1;
    }
    let mut divisions = 1;
    while reference_point_count(objectives, divisions + 1)
        .is_some_and(|count| count <= population_size)
    {
        divisions += 1;
    }
    divisions
}

/// Das and Dennis's structured reference points: every point of the unit simplex in
/// `objectives` dimensions whose coordinates are multiples of `1 / divisions`, in
/// lexicographic order of their coordinates.
pub fn das_dennis_points(objectives: usize, divisions: usize) -> Vec<Vec<f64>> {
    fn fill(
        remaining: usize,
        slots: usize,
        divisions: usize,
        prefix: &mut Vec<f64>,
        points: &mut Vec<Vec<f64>>,
    ) {
        if slots == 1 {
            prefix.push(remaining as f64 / divisions as f64);
            points.push(prefix.clone());
            prefix.pop();
            return;
        }
        for taken in 0..=remaining {
            prefix.push(taken as f64 / divisions as f64);
            fill(remaining - taken, slots - 1, divisions, prefix, points);
            prefix.pop();
        }
    }
    let mut points = Vec::with_capacity(reference_point_count(objectives, divisions).unwrap_or(0));
    if objectives > 0 && divisions > 0 {
        fill(
            divisions,
            objectives,
            divisions,
            &mut Vec::with_capacity(objectives),
            &mut points,
        );
    }
    points
}

/// How losses are normalised before association: translated by the ideal point and divided by
/// the intercepts of the hyperplane through the extreme points.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalization {
    /// The smallest loss in each objective.
    pub ideal: Vec<f64>,
    /// The distance from the ideal point to where the hyperplane cuts each axis (or the
    /// fallback's), always positive.
    pub intercepts: Vec<f64>,
}

impl Normalization {
    /// The normalisation of `losses` (one vector per member, all of one length), with
    /// `first_front` (indices into `losses`) the members no other dominates, whose worst
    /// losses are the fallback intercepts.
    pub fn of(losses: &[Vec<f64>], first_front: &[usize]) -> Normalization {
        let objectives = losses.first().map_or(0, Vec::len);
        let ideal: Vec<f64> = (0..objectives)
            .map(|objective| {
                losses
                    .iter()
                    .map(|loss| loss[objective])
                    .fold(f64::INFINITY, f64::min)
            })
            .collect();
        let translated: Vec<Vec<f64>> = losses
            .iter()
            .map(|loss| loss.iter().zip(&ideal).map(|(x, z)| x - z).collect())
            .collect();
        let extremes: Vec<&Vec<f64>> = (0..objectives)
            .map(|axis| {
                let scalarised = |point: &Vec<f64>| {
                    point
                        .iter()
                        .enumerate()
                        .map(|(objective, value)| {
                            if objective == axis {
                                *value
                            } else {
                                value / 1e-6
                            }
                        })
                        .fold(f64::NEG_INFINITY, f64::max)
                };
                translated
                    .iter()
                    .min_by(|a, b| scalarised(a).total_cmp(&scalarised(b)))
                    .expect("losses is not empty when there are objectives")
            })
            .collect();
        let matrix: Vec<Vec<f64>> = extremes.iter().map(|point| point.to_vec()).collect();
        let hyperplane = solve(matrix, vec![1.0; objectives]).and_then(|normal| {
            let intercepts: Vec<f64> = normal.iter().map(|b| 1.0 / b).collect();
            intercepts
                .iter()
                .all(|a| a.is_finite() && *a > 1e-6)
                .then_some(intercepts)
        });
        let worst = |members: &mut dyn Iterator<Item = &Vec<f64>>, objective: usize| {
            members
                .map(|point| point[objective])
                .fold(f64::NEG_INFINITY, f64::max)
        };
        let intercepts = hyperplane.unwrap_or_else(|| {
            (0..objectives)
                .map(|objective| {
                    let front = worst(
                        &mut first_front.iter().map(|&member| &translated[member]),
                        objective,
                    );
                    let all = worst(&mut translated.iter(), objective);
                    [front, all, 1.0]
                        .into_iter()
                        .find(|a| a.is_finite() && *a > 1e-6)
                        .unwrap_or(1.0)
                })
                .collect()
        });
        Normalization { ideal, intercepts }
    }

    /// `loss` translated by the ideal point and divided by the intercepts.
    pub fn apply(&self, loss: &[f64]) -> Vec<f64> {
        loss.iter()
            .zip(&self.ideal)
            .zip(&self.intercepts)
            .map(|((x, z), a)| (x - z) / a)
            .collect()
    }
}

/// The reference line a member joined.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Association {
    /// The index of the nearest reference point.
    pub reference: usize,
    /// The member's perpendicular distance to that point's line through the origin.
    pub distance: f64,
}

/// Each normalised point's nearest reference line by perpendicular distance (ties to the
/// earlier reference point).
pub fn associate(normalized: &[Vec<f64>], reference_points: &[Vec<f64>]) -> Vec<Association> {
    let squared_norms: Vec<f64> = reference_points
        .iter()
        .map(|w| w.iter().map(|x| x * x).sum())
        .collect();
    normalized
        .iter()
        .map(|point| {
            let squared_length: f64 = point.iter().map(|x| x * x).sum();
            let mut best = Association {
                reference: 0,
                distance: f64::INFINITY,
            };
            for (reference, (w, squared_norm)) in
                reference_points.iter().zip(&squared_norms).enumerate()
            {
                let projection: f64 = point.iter().zip(w).map(|(x, y)| x * y).sum();
                // |p|^2 - (p.w)^2 / |w|^2 is the squared distance from the line.
                let distance = (squared_length - projection * projection / squared_norm)
                    .max(0.0)
                    .sqrt();
                if distance < best.distance {
                    best = Association {
                        reference,
                        distance,
                    };
                }
            }
            best
        })
        .collect()
}

/// Niching (Deb and Jain 2014, Algorithm 4): picks `count` of the members after the first
/// `taken` of `associations` (the last front; the first `taken` are already in the population
/// and only fill the niche counts), returning their indices into `associations` in the order
/// picked. Fewer are returned only if fewer are available.
pub fn niche_select(
    associations: &[Association],
    taken: usize,
    count: usize,
    reference_count: usize,
    rng: &mut impl Rng,
) -> Vec<usize> {
    let mut niche_counts = vec![0usize; reference_count];
    for association in &associations[..taken] {
        niche_counts[association.reference] += 1;
    }
    // Each reference point's unpicked last-front members.
    let mut candidates: Vec<Vec<usize>> = vec![Vec::new(); reference_count];
    for (member, association) in associations.iter().enumerate().skip(taken) {
        candidates[association.reference].push(member);
    }
    let mut picked = Vec::with_capacity(count);
    while picked.len() < count {
        let open = (0..reference_count).filter(|&reference| !candidates[reference].is_empty());
        let Some(least) = open.clone().map(|reference| niche_counts[reference]).min() else {
            break;
        };
        let least_filled: Vec<usize> = open
            .filter(|&reference| niche_counts[reference] == least)
            .collect();
        let reference = least_filled[rng.random_range(0..least_filled.len())];
        let members = &mut candidates[reference];
        let position = if niche_counts[reference] == 0 {
            let nearest = |&a: &usize, &b: &usize| {
                associations[members[a]]
                    .distance
                    .total_cmp(&associations[members[b]].distance)
            };
            (0..members.len())
                .min_by(nearest)
                .expect("an open reference point has members")
        } else {
            rng.random_range(0..members.len())
        };
        picked.push(members.remove(position));
        niche_counts[reference] += 1;
    }
    picked
}

/// NSGA-III's environmental selection: at most `population_size` of `outcomes`, whole fronts
/// under constraint domination, then the last front by niching around `reference_points`.
fn select_parents(
    outcomes: &[&Outcome],
    population_size: usize,
    reference_points: &[Vec<f64>],
    rng: &mut impl Rng,
) -> Vec<Selected> {
    let fronts = non_dominated_sort(outcomes.len(), |i, j| {
        constrained_dominates(outcomes[i], outcomes[j])
    });
    let mut chosen: Vec<Selected> = Vec::with_capacity(population_size);
    for (rank, front) in fronts.iter().enumerate() {
        let room = population_size - chosen.len();
        let whole = |&member: &usize| Selected {
            member,
            rank,
            preference: 0.0,
        };
        if front.len() <= room {
            chosen.extend(front.iter().map(whole));
            if chosen.len() == population_size {
                break;
            }
            continue;
        }
        // The last front fits only in part: normalise `S` (the fronts taken and this one),
        // associate, and fill the room by niching.
        let members: Vec<usize> = chosen
            .iter()
            .map(|selected| selected.member)
            .chain(front.iter().copied())
            .collect();
        let losses: Vec<Vec<f64>> = members
            .iter()
            .map(|&member| outcomes[member].losses.clone())
            .collect();
        // The first front's positions in `S`: the first fronts taken, or this one alone.
        let first_front: Vec<usize> = (0..fronts[0].len()).collect();
        let normalization = Normalization::of(&losses, &first_front);
        let normalized: Vec<Vec<f64>> = losses
            .iter()
            .map(|loss| normalization.apply(loss))
            .collect();
        let associations = associate(&normalized, reference_points);
        let picked = niche_select(
            &associations,
            chosen.len(),
            room,
            reference_points.len(),
            rng,
        );
        chosen.extend(picked.into_iter().map(|position| whole(&members[position])));
        break;
    }
    chosen
}

/// The solution of `matrix x = rhs` by Gaussian elimination with partial pivoting, or `None`
/// when the matrix is singular to working precision.
fn solve(mut matrix: Vec<Vec<f64>>, mut rhs: Vec<f64>) -> Option<Vec<f64>> {
    let size = rhs.len();
    let scale = matrix
        .iter()
        .flatten()
        .fold(0.0_f64, |largest, value| largest.max(value.abs()));
    if !(scale.is_finite() && scale > 0.0) {
        return None;
    }
    for column in 0..size {
        let pivot = (column..size)
            .max_by(|&a, &b| matrix[a][column].abs().total_cmp(&matrix[b][column].abs()))
            .expect("column < size");
        if matrix[pivot][column].abs() <= 1e-12 * scale {
            return None;
        }
        matrix.swap(column, pivot);
        rhs.swap(column, pivot);
        let (upper, lower) = matrix.split_at_mut(column + 1);
        let pivot_row = &upper[column];
        for (offset, row) in lower.iter_mut().enumerate() {
            let factor = row[column] / pivot_row[column];
            for (entry, pivot_entry) in row[column..].iter_mut().zip(&pivot_row[column..]) {
                *entry -= factor * pivot_entry;
            }
            rhs[column + 1 + offset] -= factor * rhs[column];
        }
    }
    let mut solution = vec![0.0; size];
    for row in (0..size).rev() {
        let known: f64 = (row + 1..size).map(|k| matrix[row][k] * solution[k]).sum();
        solution[row] = (rhs[row] - known) / matrix[row][row];
    }
    Some(solution)
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn gaussian_elimination_solves_and_refuses_singular_systems() {
        let solution = solve(
            vec![
                vec![0.0, 2.0, 1.0],
                vec![1.0, 1.0, 0.0],
                vec![3.0, 0.0, 1.0],
            ],
            vec![4.5, 3.0, 6.0],
        )
        .expect("regular");
        // x = (1.5, 1.5, 1.5) solves it.
        for value in solution {
            assert!((value - 1.5).abs() < 1e-12);
        }
        assert_eq!(
            solve(vec![vec![1.0, 2.0], vec![2.0, 4.0]], vec![1.0, 1.0]),
            None
        );
    }

    #[test]
    fn selection_fills_the_population_exactly() {
        let outcomes: Vec<Outcome> = (0..12)
            .map(|i| {
                let t = i as f64 / 11.0;
                Outcome {
                    losses: vec![t, 1.0 - t, 0.5 + (i % 3) as f64],
                    violation: 0.0,
                }
            })
            .collect();
        let references = das_dennis_points(3, 3);
        let borrowed: Vec<&Outcome> = outcomes.iter().collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let chosen = select_parents(&borrowed, 7, &references, &mut rng);
        assert_eq!(chosen.len(), 7);
        let mut members: Vec<usize> = chosen.iter().map(|selected| selected.member).collect();
        members.sort_unstable();
        members.dedup();
        assert_eq!(members.len(), 7, "no member twice");
    }
}
