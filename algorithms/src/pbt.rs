//! Population-based training (Jaderberg, Dalibard, Osindero, Czarnecki, Donahue, Razavi,
//! Vinyals, Green, Dunning, Simonyan, Fernando & Kavukcuoglu, "Population Based Training of
//! Neural Networks", arXiv:1711.09846, 2017), with Katib's name, settings and trial labels
//! (Katib's docs: "Population Based Training", `algorithmName: pbt`).
//!
//! # Generations
//!
//! A population of `n_population` members trains in generations; each trial is one member's
//! training for one generation, continuing from a checkpoint. Generation 0 draws every member
//! from the parameters' priors and has no parent. Once every member of generation `g` has a
//! result, the members are ranked by the objective and generation `g + 1` is made, member by
//! member, by truncation selection (the paper's section 4.1):
//!
//! - **exploit**: a member in the bottom `truncation_threshold` fraction copies a member of
//!   the top fraction, drawn uniformly: the new trial's parent is that top trial, whose
//!   checkpoint it continues from, and it starts from the top trial's values;
//! - **explore**: those copied values are then changed, each numeric value multiplied by 0.8
//!   or 1.2 (Katib's and the paper's factors; an int the factor leaves unchanged moves one
//!   step that way instead, a double at 0 stays there) and each list value moved to a
//!   neighbour in the list, or, with `resample_probability` set, each value redrawn from its
//!   prior with that probability and kept otherwise;
//! - every other member continues: its parent is its own trial of generation `g`, its values
//!   unchanged.
//!
//! With `n` the population size, the bottom and top fractions hold `floor(n *
//! truncation_threshold)` members each (ties in the objective are broken by member index).
//!
//! # Labels and state
//!
//! Every suggestion carries Katib's labels [`GENERATION_LABEL`] and, from generation 1 on,
//! [`PARENT_LABEL`] (the parent trial's name), plus [`MEMBER_LABEL`], the member's index in
//! the population. The algorithm keeps no other state: each call rebuilds the population from
//! the trials' labels. A generation is planned from the previous generation's results and the
//! seed alone, so the same history gives the same plan, and a member whose trial failed,
//! was killed or reported no metrics is proposed again with the same values and parent (Katib
//! re-queues such trials too). Generation `g + 1` is not proposed before every member of
//! generation `g` has a result; until then a request is answered with how many suggestions
//! can be made ([`SuggestError::NotReady`]).
//!
//! # Checkpoints
//!
//! The algorithm does no I/O. The driver that starts a trial gives it a checkpoint directory
//! holding a copy of its parent's (Katib's suggestion service copies
//! `<experiment>/<parent>` to `<experiment>/<trial>` on its volume, and Katib's webhook mounts
//! that at `suggestion_trial_dir` in the trial's primary container).
//!
//! # Differences from Katib
//!
//! - Exploit: Katib gives the new trial the top trial's values but labels the bottom trial as
//!   its parent, so it continues from the bottom trial's checkpoint; Sextant continues from the
//!   top trial's checkpoint, as the paper copies weights and hyperparameters together.
//! - Explore: Katib perturbs every member that was not exploited and leaves the exploited
//!   copies as they are; Sextant explores the copies and lets the others continue, as the
//!   paper does.
//! - Katib's service keeps the population in its memory (a restarted service starts over) and
//!   names trials `<experiment>-<uuid>`; Sextant's state is in the labels and the driver names
//!   trials. A caller must send the labels back with each trial (`Trial.spec.labels`); a trial
//!   without them is an invalid history.
//! - Values are drawn from the priors, so int and double parameters need no `step` (Katib's
//!   service samples a lattice and requires one).

use std::collections::BTreeMap;

use rand::Rng;
use rand::seq::IndexedRandom;

use crate::SuggestError;
use crate::algorithm::{BuildContext, SearchAlgorithm, SuggestRequest, Suggestion, Suggestions};
use crate::history::TrialRecord;
use crate::objective::Objective;
use crate::seed::rng_for;
use crate::settings::{Setting, SettingsError, SettingsReader};
use crate::space::{Assignment, Domain, Parameter, SearchSpace, Value};

/// Katib's name of the algorithm.
pub const NAME: &str = "pbt";

/// Katib's label of a trial's generation (`0`, `1`, ...).
pub const GENERATION_LABEL: &str = "pbt.suggestion.katib.kubeflow.org/generation";

/// Katib's label of the trial whose checkpoint a trial continues from.
pub const PARENT_LABEL: &str = "pbt.suggestion.katib.kubeflow.org/parent";

/// Sextant's label of a trial's member index in the population (`0` to `n_population - 1`).
pub const MEMBER_LABEL: &str = "pbt.sextant.dev/member";

/// The setting naming where the trial's checkpoint directory is mounted in its container.
pub const CHECKPOINT_DIR_SETTING: &str = "suggestion_trial_dir";

/// The smallest population Katib accepts.
pub const MIN_POPULATION: usize = 5;

/// The factors a numeric value is multiplied by when perturbed.
pub const PERTURB_FACTORS: [f64; 2] = [0.8, 1.2];

/// The settings Katib requires, in the order Katib lists them.
const REQUIRED_SETTINGS: [&str; 3] = [
    CHECKPOINT_DIR_SETTING,
    "n_population",
    "truncation_threshold",
];

/// Population-based training with its settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PopulationBasedTraining {
    /// Members per generation.
    pub n_population: usize,
    /// The fraction of the population replaced by copies of the top fraction each generation.
    pub truncation_threshold: f64,
    /// With a value, explore redraws each value from its prior with this probability; without,
    /// it perturbs every value.
    pub resample_probability: Option<f64>,
    /// Where the trial's checkpoint directory is mounted in its container (an absolute path);
    /// the algorithm only carries it for the drivers.
    pub suggestion_trial_dir: String,
    /// Seed of the random draws; they also depend on the history (see [`crate::seed`]).
    pub random_state: Option<u64>,
}

/// Builds PBT from Katib's settings (`suggestion_trial_dir`, `n_population`,
/// `truncation_threshold`, `resample_probability`) and `random_state`.
pub fn build(
    settings: &[Setting],
    _context: &BuildContext<'_>,
) -> Result<Box<dyn SearchAlgorithm>, SettingsError> {
    Ok(Box::new(PopulationBasedTraining::from_settings(settings)?))
}

impl PopulationBasedTraining {
    /// Parses and validates the settings; the space needs nothing, every parameter type can be
    /// explored.
    pub fn from_settings(settings: &[Setting]) -> Result<PopulationBasedTraining, SettingsError> {
        let mut reader = SettingsReader::new(NAME, settings);
        let suggestion_trial_dir = reader.raw(CHECKPOINT_DIR_SETTING);
        let n_population = reader.parse::<usize>(
            "n_population",
            &format!("must be an integer >= {MIN_POPULATION}"),
            |n| *n >= MIN_POPULATION,
        )?;
        let fraction = "must be a number between 0 and 1, inclusive";
        let in_unit = |x: &f64| (0.0..=1.0).contains(x);
        let truncation_threshold =
            reader.parse::<f64>("truncation_threshold", fraction, in_unit)?;
        let resample_probability =
            reader.parse::<f64>("resample_probability", fraction, in_unit)?;
        let random_state = reader.random_state()?;
        reader.finish()?;
        let (Some(suggestion_trial_dir), Some(n_population), Some(truncation_threshold)) =
            (suggestion_trial_dir, n_population, truncation_threshold)
        else {
            let given = [
                suggestion_trial_dir.is_some(),
                n_population.is_some(),
                truncation_threshold.is_some(),
            ];
            return Err(SettingsError::MissingSettings {
                algorithm: NAME.into(),
                required: REQUIRED_SETTINGS
                    .iter()
                    .map(|name| name.to_string())
                    .collect(),
                missing: REQUIRED_SETTINGS
                    .iter()
                    .zip(given)
                    .filter(|(_, given)| !given)
                    .map(|(name, _)| name.to_string())
                    .collect(),
            });
        };
        if !suggestion_trial_dir.starts_with('/') {
            return Err(SettingsError::InvalidValue {
                setting: CHECKPOINT_DIR_SETTING.into(),
                value: suggestion_trial_dir.into(),
                rule: "must be an absolute path: where the trial's checkpoint directory is \
                       mounted in its container"
                    .into(),
            });
        }
        Ok(PopulationBasedTraining {
            n_population,
            truncation_threshold,
            resample_probability,
            suggestion_trial_dir: suggestion_trial_dir.to_string(),
            random_state,
        })
    }

    /// How many members the bottom and top fractions each hold.
    pub fn truncation_count(&self) -> usize {
        (self.n_population as f64 * self.truncation_threshold).floor() as usize
    }

    /// The members of `generation`, from the previous generation's ranked results (none for
    /// generation 0).
    fn plan(&self, space: &SearchSpace, generation: u64, previous: &[Member<'_>]) -> Vec<Planned> {
        let records: Vec<TrialRecord> =
            previous.iter().map(|member| member.trial.clone()).collect();
        let mut rng = rng_for(
            self.random_state,
            &records,
            &format!("{NAME} generation {generation}"),
        );
        if previous.is_empty() {
            let mut quantiles = vec![0.0; space.len()];
            return (0..self.n_population)
                .map(|_| {
                    for quantile in quantiles.iter_mut() {
                        *quantile = rng.random::<f64>();
                    }
                    Planned {
                        assignment: space.from_quantiles(&quantiles),
                        parent: None,
                    }
                })
                .collect();
        }
        // Best first; ties keep member order, so the ranking is the same on every call.
        let mut ranking: Vec<usize> = (0..previous.len()).collect();
        ranking.sort_by(|a, b| previous[*a].loss.total_cmp(&previous[*b].loss));
        let cut = self.truncation_count().min(previous.len());
        let top = &ranking[..cut];
        let bottom = &ranking[ranking.len() - cut..];
        previous
            .iter()
            .enumerate()
            .map(|(index, member)| {
                let source = if bottom.contains(&index) {
                    top.choose(&mut rng).map(|source| &previous[*source])
                } else {
                    None
                };
                match source {
                    Some(source) => Planned {
                        assignment: self.explore(space, &source.trial.assignment, &mut rng),
                        parent: Some(source.trial.name.clone()),
                    },
                    None => Planned {
                        assignment: member.trial.assignment.clone(),
                        parent: Some(member.trial.name.clone()),
                    },
                }
            })
            .collect()
    }

    /// Explore: perturbs every value, or resamples each with `resample_probability`.
    fn explore(
        &self,
        space: &SearchSpace,
        assignment: &Assignment,
        rng: &mut impl Rng,
    ) -> Assignment {
        let values = space
            .parameters()
            .iter()
            .zip(&assignment.values)
            .map(|(parameter, value)| match self.resample_probability {
                Some(probability) => {
                    if rng.random::<f64>() < probability {
                        parameter.from_quantile(rng.random::<f64>())
                    } else {
                        *value
                    }
                }
                None => perturb(parameter, *value, rng),
            })
            .collect();
        Assignment { values }
    }
}

/// A value multiplied by 0.8 or 1.2 (a list value moved to a neighbour), kept feasible.
pub fn perturb(parameter: &Parameter, value: Value, rng: &mut impl Rng) -> Value {
    let upward = rng.random::<bool>();
    let factor = PERTURB_FACTORS[usize::from(upward)];
    match (&parameter.domain, value) {
        (Domain::Double { .. }, Value::Double(x)) => {
            parameter.nearest_value(x * factor).unwrap_or(value)
        }
        (Domain::Int { step, .. }, Value::Int(x)) => {
            let scaled = parameter.nearest_value(x as f64 * factor).unwrap_or(value);
            if scaled != value {
                return scaled;
            }
            // A small int is unchanged by 0.8 or 1.2 after rounding; it moves one step in the
            // factor's direction (scaling a negative value up moves it down).
            let direction = if upward == (x >= 0) { 1 } else { -1 };
            parameter
                .nearest_value((x + direction * step) as f64)
                .unwrap_or(value)
        }
        (Domain::Discrete { values, .. }, Value::Choice(index)) => {
            Value::Choice(neighbour(index, values.len(), upward))
        }
        (Domain::Categorical { choices }, Value::Choice(index)) => {
            Value::Choice(neighbour(index, choices.len(), upward))
        }
        _ => value,
    }
}

/// The next or previous index of a list, wrapping around at its ends as Katib's service does.
fn neighbour(index: usize, len: usize, upward: bool) -> usize {
    if len == 0 {
        return index;
    }
    if upward {
        (index + 1) % len
    } else {
        (index + len - 1) % len
    }
}

/// One member of a generation's plan.
#[derive(Debug, Clone)]
struct Planned {
    assignment: Assignment,
    parent: Option<String>,
}

/// A member of a finished generation: the trial that holds its result and its loss
/// (`+inf` when it reported no usable objective value, so it ranks last).
#[derive(Debug, Clone, Copy)]
struct Member<'a> {
    trial: &'a TrialRecord,
    loss: f64,
}

/// The trials of one generation by member index.
type Generation<'a> = BTreeMap<usize, Vec<&'a TrialRecord>>;

/// Groups the trials by generation and member from their labels.
fn population<'a>(
    trials: &'a [TrialRecord],
    n_population: usize,
) -> Result<BTreeMap<u64, Generation<'a>>, SuggestError> {
    let mut generations: BTreeMap<u64, Generation<'a>> = BTreeMap::new();
    for trial in trials {
        let label = |key: &str| -> Result<u64, SuggestError> {
            let text = trial.labels.get(key).ok_or_else(|| {
                SuggestError::InvalidHistory(format!(
                    "trial {:?} has no label {key}; pbt keeps its population in the labels it \
                     puts on each trial, so the caller must send them back with the trial \
                     (Trial.spec.labels)",
                    trial.name
                ))
            })?;
            text.trim().parse::<u64>().map_err(|_| {
                SuggestError::InvalidHistory(format!(
                    "trial {:?} has label {key}={text:?}, which is not a whole number",
                    trial.name
                ))
            })
        };
        let generation = label(GENERATION_LABEL)?;
        let member = label(MEMBER_LABEL)?;
        let member = usize::try_from(member)
            .ok()
            .filter(|member| *member < n_population)
            .ok_or_else(|| {
                SuggestError::InvalidHistory(format!(
                    "trial {:?} is member {member} of the population, and n_population is \
                     {n_population}",
                    trial.name
                ))
            })?;
        generations
            .entry(generation)
            .or_default()
            .entry(member)
            .or_default()
            .push(trial);
    }
    Ok(generations)
}

/// What holds a member's place in its generation.
enum Place<'a> {
    /// The first of its trials with a result.
    Finished(&'a TrialRecord),
    /// A trial still to finish.
    Pending,
    /// No trial, or only ones that failed: the member is to be proposed (again).
    Open,
}

fn place<'a>(trials: Option<&Vec<&'a TrialRecord>>) -> Place<'a> {
    let trials = trials.map(Vec::as_slice).unwrap_or_default();
    if let Some(finished) = trials
        .iter()
        .copied()
        .find(|trial| trial.condition.has_result())
    {
        return Place::Finished(finished);
    }
    if trials.iter().any(|trial| trial.condition.is_pending()) {
        return Place::Pending;
    }
    Place::Open
}

fn labels(generation: u64, member: usize, parent: Option<&str>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (GENERATION_LABEL.to_string(), generation.to_string()),
        (MEMBER_LABEL.to_string(), member.to_string()),
    ]);
    if let Some(parent) = parent {
        labels.insert(PARENT_LABEL.to_string(), parent.to_string());
    }
    labels
}

fn loss_of(trial: &TrialRecord, objective: &Objective) -> f64 {
    trial.loss(objective).unwrap_or(f64::INFINITY)
}

impl SearchAlgorithm for PopulationBasedTraining {
    fn name(&self) -> &'static str {
        NAME
    }

    fn suggest(&self, request: &SuggestRequest<'_>) -> Result<Suggestions, SuggestError> {
        let generations = population(request.trials, self.n_population)?;
        let empty = Generation::new();
        let mut previous: Vec<Member<'_>> = Vec::new();
        let mut generation = 0;
        loop {
            request.cancel.check()?;
            let plan = self.plan(request.space, generation, &previous);
            let trials = generations.get(&generation).unwrap_or(&empty);
            let mut finished = Vec::with_capacity(plan.len());
            let mut pending = 0;
            let mut open = Vec::new();
            for (member, planned) in plan.into_iter().enumerate() {
                match place(trials.get(&member)) {
                    Place::Finished(trial) => finished.push(Member {
                        trial,
                        loss: loss_of(trial, request.objective),
                    }),
                    Place::Pending => pending += 1,
                    Place::Open => open.push((member, planned)),
                }
            }
            if open.len() >= request.count {
                let suggestions = open
                    .into_iter()
                    .take(request.count)
                    .map(|(member, planned)| Suggestion {
                        labels: labels(generation, member, planned.parent.as_deref()),
                        assignment: planned.assignment,
                    })
                    .collect();
                return Ok(Suggestions {
                    suggestions,
                    settings: None,
                });
            }
            if !open.is_empty() || pending > 0 {
                return Err(SuggestError::NotReady {
                    available: open.len(),
                    reason: format!(
                        "pbt can propose {} of the {} trials asked for: generation {generation} \
                         has {pending} trials running, and generation {} is made once all {} \
                         members of generation {generation} have finished",
                        open.len(),
                        request.count,
                        generation + 1,
                        self.n_population
                    ),
                });
            }
            // Every member of this generation has a result: plan the next from them. The
            // loop ends, as a generation without trials leaves every member open.
            previous = finished;
            generation += 1;
        }
    }
}
