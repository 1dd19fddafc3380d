//! Hyperband (Li, Jamieson, DeSalvo, Rostamizadeh & Talwalkar, "Hyperband: A Novel
//! Bandit-Based Approach to Hyperparameter Optimization", JMLR 18(185), 2018, Algorithm 1),
//! with Katib's settings and Katib's protocol: the algorithm's state travels in the settings
//! that each reply returns and the next request carries back.
//!
//! # Brackets
//!
//! With maximum resource `R = r_l` and `eta`, `s_max = ⌊log_eta R⌋` and the budget per bracket
//! is `B = (s_max + 1) R`. Bracket `s` runs from `s_max` down to 0; it starts
//! `n = ⌈(s_max + 1) eta^s / (s + 1)⌉` random configurations with resource `r = R eta^-s`, and
//! its rung `i = 0..=s` evaluates `n_i = ⌊n eta^-i⌋` configurations with resource
//! `r_i = r eta^i`: rung 0 draws them from the parameters' priors, rung `i > 0` promotes the
//! best `n_i` of rung `i - 1`. The resource is the value of the parameter named by
//! `resource_name` (an int or double parameter; the value is rounded to what the parameter
//! allows).
//!
//! # State in the settings
//!
//! The reply's settings hold the user's (`r_l`, `resource_name`, `eta`, `random_state`) and the
//! state under Katib's names: `s_max`, `b_l` (derived), `current_s` (the bracket; `-1` once the
//! outer loop is done), `current_i` (the rung), `n` and `r` (the rung's size and resource) and
//! `evaluating_trials` (how many of the rung's configurations have been proposed). Every
//! suggestion is labelled with its bracket and rung ([`BRACKET_LABEL`], [`RUNG_LABEL`]).
//!
//! # Finding the previous rung
//!
//! Promotion needs the trials of the previous rung. Labels are only a hint: Sextant's own
//! controllers send them back, but Katib's controller writes a reply's labels on the Trial's
//! metadata and sends the empty `Trial.spec.labels`. Without labels the rung is recognised from
//! what every caller sends: its trials carry the rung's resource value and, in their other
//! parameters, one of the bracket's rung-0 configurations (drawn from `random_state` and the
//! bracket alone, so drawn again on every call); of the trials that match, the rung is the
//! latest `n_i` by `status.start_time` (Katib's service takes the last `evaluating_trials`
//! trials by start time). Neither the order of the request's trials nor start times that tie
//! within Katib's one-second resolution change the answer.
//!
//! # Differences from Katib
//!
//! - When the outer loop is finished Katib replies with no assignments (its controller then
//!   fails on "unexpected trials"); Sextant returns [`SuggestError::Exhausted`].
//! - Katib overwrites the bracket size with the number of trials requested and takes "the last
//!   trials by start time" as the previous rung; Sextant keeps the paper's sizes, proposes a
//!   rung over as many requests as the caller likes, and finds the previous rung as above. A
//!   request for more trials than can be proposed before the next results arrive is refused
//!   with a message saying how many can be; so Katib's rule `parallelTrialCount >= eta^s_max`
//!   is not needed and not enforced. Katib's controller asks for `parallelTrialCount` minus
//!   the running trials and never fewer, so under it `parallelTrialCount` must not exceed the
//!   smallest rung that is not the last of its bracket (3 for `r_l = 9, eta = 3`).
//! - Katib samples rung 0 uniformly whatever the distribution; Sextant draws from the priors.
//! - `eta` must be an integer >= 2 (Katib turns values <= 0 into 3 and divides by zero at 1).

use std::collections::{BTreeMap, HashSet};

use rand::Rng;

use crate::SuggestError;
use crate::algorithm::{BuildContext, SearchAlgorithm, SuggestRequest, Suggestion, Suggestions};
use crate::history::TrialRecord;
use crate::objective::Objective;
use crate::seed::rng_for;
use crate::settings::{Setting, SettingsError, SettingsReader};
use crate::space::{Assignment, Domain, Parameter, SearchSpace, Value};

/// Katib's name of the algorithm.
pub const NAME: &str = "hyperband";

/// The label that records a trial's bracket `s`.
pub const BRACKET_LABEL: &str = "hyperband.sextant.dev/bracket";

/// The label that records a trial's rung `i` within its bracket.
pub const RUNG_LABEL: &str = "hyperband.sextant.dev/rung";

/// `eta` when not set.
pub const DEFAULT_ETA: u32 = 3;

/// Hyperband with its settings and the position it has reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Hyperband {
    /// The maximum resource per configuration, `R`.
    pub r_l: f64,
    /// The parameter that receives the resource.
    pub resource_name: String,
    /// The downsampling rate.
    pub eta: u32,
    /// Seed of the random configurations.
    pub random_state: Option<u64>,
    /// Where the outer loop stands.
    pub position: Position,
}

/// A point in Hyperband's loops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The bracket `s`, or `-1` once every bracket is done.
    pub bracket: i64,
    /// The rung `i` of the bracket.
    pub rung: u32,
    /// Configurations of the rung already proposed.
    pub proposed: u64,
}

/// Builds Hyperband from Katib's settings (`r_l`, `resource_name`, `eta`, `random_state`) and
/// the state settings a previous reply returned.
pub fn build(
    settings: &[Setting],
    context: &BuildContext<'_>,
) -> Result<Box<dyn SearchAlgorithm>, SettingsError> {
    Ok(Box::new(Hyperband::from_settings(settings, context.space)?))
}

fn invalid(setting: &str, value: &str, rule: impl Into<String>) -> SettingsError {
    SettingsError::InvalidValue {
        setting: setting.into(),
        value: value.into(),
        rule: rule.into(),
    }
}

impl Hyperband {
    /// Parses and validates the settings against the space.
    pub fn from_settings(
        settings: &[Setting],
        space: &SearchSpace,
    ) -> Result<Hyperband, SettingsError> {
        let mut reader = SettingsReader::new(NAME, settings);
        let r_l = reader
            .parse::<f64>("r_l", "must be a positive number", |r| {
                r.is_finite() && *r > 0.0
            })?
            .ok_or_else(|| invalid("r_l", "", "must be set (r_l and resource_name must be set)"))?;
        let resource_name = reader
            .raw("resource_name")
            .map(|name| name.trim().to_string())
            .ok_or_else(|| {
                invalid(
                    "resource_name",
                    "",
                    "must be set (r_l and resource_name must be set)",
                )
            })?;
        let resource = space
            .parameters()
            .iter()
            .position(|parameter| parameter.name == resource_name);
        match resource.map(|index| (index, &space.parameters()[index])) {
            // Every trial runs on a budget, so the budget cannot be a parameter some trials lack.
            Some((index, _)) if space.condition(index).is_some() => {
                return Err(invalid(
                    "resource_name",
                    &resource_name,
                    "must name a parameter without a condition (every trial needs a budget)",
                ));
            }
            None => {
                return Err(invalid(
                    "resource_name",
                    &resource_name,
                    "must name a parameter of the search space",
                ));
            }
            Some((_, parameter))
                if !matches!(parameter.domain, Domain::Int { .. } | Domain::Double { .. }) =>
            {
                return Err(invalid(
                    "resource_name",
                    &resource_name,
                    "must name an int or double parameter",
                ));
            }
            Some(_) => {}
        }
        let eta = reader
            .parse::<u32>("eta", "must be an integer >= 2", |eta| *eta >= 2)?
            .unwrap_or(DEFAULT_ETA);
        let random_state = reader.random_state()?;
        let mut hyperband = Hyperband {
            r_l,
            resource_name,
            eta,
            random_state,
            position: Position {
                bracket: 0,
                rung: 0,
                proposed: 0,
            },
        };
        let s_max = hyperband.s_max();
        // Derived values are written back for Katib compatibility and recomputed here, so
        // only their syntax is checked.
        reader.parse::<i64>("s_max", "must be an integer", |_| true)?;
        reader.parse::<f64>("b_l", "must be a number", |_| true)?;
        reader.parse::<f64>("r", "must be a number", |_| true)?;
        reader.parse::<f64>("n", "must be a number", |_| true)?;
        let bracket = reader
            .parse::<i64>(
                "current_s",
                &format!("must be an integer in -1..={s_max}"),
                |s| (-1..=s_max).contains(s),
            )?
            .unwrap_or(s_max);
        let rung = reader
            .parse::<u32>(
                "current_i",
                &format!("must be an integer in 0..={}", bracket.max(0)),
                |i| i64::from(*i) <= bracket.max(0),
            )?
            .unwrap_or(0);
        hyperband.position = Position {
            bracket,
            rung,
            proposed: 0,
        };
        let rung_size = hyperband.rung_size(hyperband.position);
        let proposed = reader
            .parse::<u64>(
                "evaluating_trials",
                &format!("must be an integer in 0..={rung_size}"),
                |proposed| *proposed <= rung_size,
            )?
            .unwrap_or(0);
        hyperband.position.proposed = proposed;
        reader.finish()?;
        Ok(hyperband)
    }

    /// `⌊log_eta R⌋`, at least 0; a relative tolerance keeps exact powers (`R = 81, eta = 3`)
    /// from rounding down.
    pub fn s_max(&self) -> i64 {
        let ratio = self.r_l.ln() / f64::from(self.eta).ln();
        ((ratio + 1e-9).floor() as i64).max(0)
    }

    /// The configurations bracket `s` starts with.
    pub fn bracket_size(&self, bracket: i64) -> u64 {
        let s_max = self.s_max() as f64;
        let eta = f64::from(self.eta);
        ((s_max + 1.0) * eta.powi(bracket as i32) / (bracket as f64 + 1.0) - 1e-9).ceil() as u64
    }

    /// The configurations rung `i` of bracket `s` evaluates, `⌊n eta^-i⌋`.
    pub fn rung_size(&self, position: Position) -> u64 {
        if position.bracket < 0 {
            return 0;
        }
        self.bracket_size(position.bracket) / u64::from(self.eta).pow(position.rung)
    }

    /// The resource of rung `i` of bracket `s`, `R eta^(i - s)`.
    pub fn rung_resource(&self, position: Position) -> f64 {
        self.r_l * f64::from(self.eta).powi(position.rung as i32 - position.bracket as i32)
    }

    /// Every trial the whole outer loop runs.
    pub fn total_trials(&self) -> u64 {
        (0..=self.s_max())
            .map(|bracket| {
                (0..=bracket as u32)
                    .map(|rung| {
                        self.rung_size(Position {
                            bracket,
                            rung,
                            proposed: 0,
                        })
                    })
                    .sum::<u64>()
            })
            .sum()
    }

    /// The settings that carry `position` to the next request.
    pub fn settings_at(&self, position: Position) -> Vec<Setting> {
        let s_max = self.s_max();
        let mut settings = vec![
            Setting::new("r_l", self.r_l.to_string()),
            Setting::new("resource_name", self.resource_name.clone()),
            Setting::new("eta", self.eta.to_string()),
        ];
        if let Some(seed) = self.random_state {
            settings.push(Setting::new("random_state", seed.to_string()));
        }
        settings.extend([
            Setting::new("s_max", s_max.to_string()),
            Setting::new("b_l", ((s_max + 1) as f64 * self.r_l).to_string()),
            Setting::new("current_s", position.bracket.to_string()),
            Setting::new("current_i", position.rung.to_string()),
            Setting::new("n", self.rung_size(position).to_string()),
            Setting::new("r", self.rung_resource(position).to_string()),
            Setting::new("evaluating_trials", position.proposed.to_string()),
        ]);
        settings
    }

    /// The position after `position` once its rung is fully proposed.
    fn next_rung(&self, position: Position) -> Position {
        if i64::from(position.rung) < position.bracket {
            Position {
                bracket: position.bracket,
                rung: position.rung + 1,
                proposed: 0,
            }
        } else {
            Position {
                bracket: position.bracket - 1,
                rung: 0,
                proposed: 0,
            }
        }
    }

    fn resource_value(&self, parameter: &Parameter, resource: f64) -> Value {
        let exact = match parameter.domain {
            Domain::Int { .. } => Value::Int(resource.round() as i64),
            _ => Value::Double(resource),
        };
        if parameter.contains(exact) {
            exact
        } else {
            parameter.from_unit(parameter.to_unit(exact))
        }
    }

    fn with_resource(
        &self,
        space: &SearchSpace,
        mut assignment: Assignment,
        resource: f64,
    ) -> Assignment {
        for (parameter, value) in space.parameters().iter().zip(assignment.values.iter_mut()) {
            if parameter.name == self.resource_name {
                *value = self.resource_value(parameter, resource);
            }
        }
        assignment
    }

    /// Rung 0 of bracket `s`: the bracket's random configurations, in a fixed order.
    /// Only the first `limit` are drawn: a bracket of a large `r_l` can be huge.
    fn random_configurations(
        &self,
        space: &SearchSpace,
        bracket: i64,
        limit: u64,
    ) -> Vec<Assignment> {
        let mut rng = rng_for(
            self.random_state,
            &[],
            &format!("hyperband/bracket{bracket}"),
        );
        let mut quantiles = vec![0.0; space.len()];
        (0..self.bracket_size(bracket).min(limit))
            .map(|_| {
                for quantile in quantiles.iter_mut() {
                    *quantile = rng.random::<f64>();
                }
                space.from_quantiles(&quantiles)
            })
            .collect()
    }

    /// Rung `i > 0`: the best `n_i` configurations of rung `i - 1`, best first.
    fn promoted_configurations(
        &self,
        space: &SearchSpace,
        position: Position,
        trials: &[TrialRecord],
        objective: &Objective,
    ) -> Result<Vec<Assignment>, SuggestError> {
        let previous = Position {
            bracket: position.bracket,
            rung: position.rung - 1,
            proposed: 0,
        };
        let members = self.rung_members(space, previous, trials);
        if members.is_empty() {
            return Err(SuggestError::InvalidHistory(format!(
                "hyperband: no trial of bracket {} rung {} in the history: none is labelled \
                 {BRACKET_LABEL}={} {RUNG_LABEL}={}, and none has {} = {} with a configuration \
                 of the bracket",
                previous.bracket,
                previous.rung,
                previous.bracket,
                previous.rung,
                self.resource_name,
                self.rung_resource(previous),
            )));
        }
        let pending = members
            .iter()
            .filter(|trial| trial.condition.is_pending())
            .count();
        if pending > 0 {
            return Err(SuggestError::NotReady {
                available: 0,
                reason: format!(
                    "hyperband: rung {} of bracket {} promotes the best of rung {}, and {pending} of \
                 its {} trials have not finished; request again when they have",
                    position.rung,
                    position.bracket,
                    previous.rung,
                    members.len()
                ),
            });
        }
        // Trials without a usable result rank after every trial with one, in history order.
        let mut ranked: Vec<(f64, usize)> = members
            .iter()
            .enumerate()
            .map(|(index, trial)| (trial.loss(objective).unwrap_or(f64::INFINITY), index))
            .collect();
        ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        Ok(ranked
            .into_iter()
            .take(self.rung_size(position) as usize)
            .map(|(_, index)| members[index].assignment.clone())
            .collect())
    }

    /// The trials of rung `position`, in history order.
    ///
    /// Labels are a hint: when trials carry this rung's labels, they are the rung. Katib's
    /// controller puts a reply's labels on the Trial's metadata and never sends them back, so
    /// otherwise the rung is recognised from what every caller sends: a member has the rung's
    /// resource value and one of the bracket's rung-0 configurations in its other parameters
    /// (the draw depends only on `random_state` and the bracket, so it is drawn again here),
    /// and of the trials that match, the rung is the `n_i` latest by start time, as Katib's
    /// service takes "the last `evaluating_trials` trials". A configuration can match by
    /// chance only in a small discrete space, and then only a trial of an earlier bracket,
    /// which started before this rung did.
    fn rung_members<'a>(
        &self,
        space: &SearchSpace,
        position: Position,
        trials: &'a [TrialRecord],
    ) -> Vec<&'a TrialRecord> {
        let bracket = position.bracket.to_string();
        let rung = position.rung.to_string();
        let labelled: Vec<&TrialRecord> = trials
            .iter()
            .filter(|trial| {
                trial.labels.get(BRACKET_LABEL) == Some(&bracket)
                    && trial.labels.get(RUNG_LABEL) == Some(&rung)
            })
            .collect();
        if !labelled.is_empty() {
            return labelled;
        }
        let Some(resource_index) = space
            .parameters()
            .iter()
            .position(|parameter| parameter.name == self.resource_name)
        else {
            return Vec::new();
        };
        let resource = self.resource_value(
            &space.parameters()[resource_index],
            self.rung_resource(position),
        );
        let drawn: HashSet<String> = self
            .random_configurations(space, position.bracket, u64::MAX)
            .iter()
            .map(|assignment| self.configuration_key(space, assignment, resource_index))
            .collect();
        let mut matching: Vec<(usize, &TrialRecord)> = trials
            .iter()
            .enumerate()
            .filter(|(_, trial)| {
                trial.assignment.values.get(resource_index) == Some(&resource)
                    && drawn.contains(&self.configuration_key(
                        space,
                        &trial.assignment,
                        resource_index,
                    ))
            })
            .collect();
        // A stable sort: equal start times keep history order, as in Katib's service.
        matching.sort_by(|a, b| a.1.start_time.cmp(&b.1.start_time));
        let keep = matching
            .len()
            .saturating_sub(self.rung_size(position) as usize);
        let mut members: Vec<(usize, &TrialRecord)> = matching.split_off(keep);
        members.sort_by_key(|(index, _)| *index);
        members.into_iter().map(|(_, trial)| trial).collect()
    }

    /// The values of every parameter but the resource, as text: what a configuration keeps
    /// from rung to rung.
    fn configuration_key(
        &self,
        space: &SearchSpace,
        assignment: &Assignment,
        resource_index: usize,
    ) -> String {
        let mut key = String::new();
        for (index, (parameter, value)) in space
            .parameters()
            .iter()
            .zip(&assignment.values)
            .enumerate()
        {
            if index != resource_index {
                key.push_str(&parameter.format_value(*value));
            }
            key.push('\u{1f}');
        }
        key
    }
}

impl SearchAlgorithm for Hyperband {
    fn name(&self) -> &'static str {
        NAME
    }

    fn suggest(&self, request: &SuggestRequest<'_>) -> Result<Suggestions, SuggestError> {
        let space = request.space;
        let mut position = self.position;
        let mut suggestions = Vec::with_capacity(request.count);
        while suggestions.len() < request.count && position.bracket >= 0 {
            request.cancel.check()?;
            if position.rung > 0 && position.proposed == 0 && !suggestions.is_empty() {
                // This rung promotes from the rung this reply is still proposing.
                break;
            }
            let configurations = if position.rung == 0 {
                let limit = position.proposed + (request.count - suggestions.len()) as u64;
                self.random_configurations(space, position.bracket, limit)
            } else {
                self.promoted_configurations(space, position, request.trials, request.objective)?
            };
            let resource = self.rung_resource(position);
            let rung_size = if position.rung == 0 {
                self.rung_size(position)
            } else {
                (configurations.len() as u64).min(self.rung_size(position))
            };
            let wanted = (request.count - suggestions.len()) as u64;
            let take = wanted.min(rung_size.saturating_sub(position.proposed));
            let labels = BTreeMap::from([
                (BRACKET_LABEL.to_string(), position.bracket.to_string()),
                (RUNG_LABEL.to_string(), position.rung.to_string()),
            ]);
            for assignment in configurations
                .into_iter()
                .skip(position.proposed as usize)
                .take(take as usize)
            {
                suggestions.push(Suggestion {
                    assignment: self.with_resource(space, assignment, resource),
                    labels: labels.clone(),
                });
            }
            position.proposed += take;
            if position.proposed >= rung_size {
                position = self.next_rung(position);
            }
        }
        if suggestions.len() < request.count {
            let total = u128::from(self.total_trials());
            if position.bracket < 0 {
                return Err(SuggestError::Exhausted {
                    remaining: suggestions.len() as u128,
                    total,
                    requested: request.count,
                });
            }
            return Err(SuggestError::NotReady {
                available: suggestions.len(),
                reason: format!(
                    "hyperband can propose {} trials now, {} were requested: rung {} of bracket \
                     {} promotes from trials that have not finished",
                    suggestions.len(),
                    request.count,
                    position.rung,
                    position.bracket
                ),
            });
        }
        Ok(Suggestions {
            suggestions,
            settings: Some(self.settings_at(position)),
        })
    }
}
