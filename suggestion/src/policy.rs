//! The one suggestion policy of a driver (`sextant run`, `sextant controller`): how it asks for
//! assignments, whether the algorithm runs in this process or behind a Katib-API Suggestion
//! service, and the one [`Outcome`] it gets back.
//!
//! The driver builds one `GetSuggestionsRequest` as Katib's controller builds it (the
//! experiment, and every trial except metrics-unavailable ones and early-stopped ones without an
//! observation); a [`Suggester`] sends it over its transport and applies these rules, each here
//! once:
//! - settings ([`merge_settings`]): the settings the algorithm handed back (Hyperband's bracket)
//!   override the spec's of the same name in every later request, and a reply's settings are
//!   merged into them by name, as Katib keeps them in `Suggestion.status.algorithmSettings`;
//! - size: a request asks for at most [`MAX_REQUEST_NUMBER`] assignments; the rest are asked for
//!   next time;
//! - fewer than asked ([`retry_count`]): when fewer points remain than were asked for, or fewer
//!   can be proposed before running trials finish, the request is asked again for as many as the
//!   answer says there are (the in-process algorithm says); when it does not say (a remote
//!   service's `OUT_OF_RANGE`), exhaustion is retried one at a time until none is left.
//!
//! Katib's own controller has no such retry: a service that cannot give all it was asked for
//! leaves the experiment Running with repeated reconcile errors (Katib issues #1494, #1534).
//! Sextant takes the last points of a finite space, then ends the experiment with
//! `ExperimentSuggestionEndReached`. The gRPC service keeps Katib's contract (exactly
//! `current_request_number` assignments, or an error) for Katib's controller.

use sextant_algorithms::SuggestError;
use sextant_proto::api;

use crate::client::RemoteSuggestionClient;
use crate::error::Error;
use crate::service::{MAX_REQUEST_NUMBER, suggest_off_reactor};

/// What one request for assignments came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Exactly as many assignments as the (last) request asked for, each with its labels; its
    /// settings are already merged into the suggester's.
    Assignments(api::GetSuggestionsReply),
    /// The search space has no untried point left for the request.
    Exhausted {
        /// How many untried points remain, when the answer says (the in-process algorithms do;
        /// a remote service's `OUT_OF_RANGE` does not).
        remaining: Option<u128>,
    },
    /// Nothing more can be proposed until running trials finish; ask again later.
    NotReady {
        /// How many could be proposed now, when the answer says.
        available: Option<usize>,
    },
    /// The remote service cannot be reached now (with why). A one-shot run gives up; a
    /// controller asks again after a backoff, since a cluster's service comes and goes.
    Unreachable(String),
    /// The request cannot be answered (with why): the reason the experiment fails with.
    Failed(String),
}

/// Where an experiment's assignments come from, with the settings its algorithm handed back.
#[derive(Debug, Clone)]
pub struct Suggester {
    transport: Transport,
    /// The settings the algorithm handed back so far, merged by name.
    returned_settings: Vec<api::AlgorithmSetting>,
}

/// How a request reaches the algorithm.
#[derive(Debug, Clone)]
enum Transport {
    /// The algorithms of `sextant-algorithms`, in this process, through the very code that
    /// answers `GetSuggestions` in `sextant serve`.
    InProcess,
    /// A Katib-API Suggestion service.
    Remote(RemoteSuggestionClient),
}

/// How many assignments to ask for again after `outcome` answered a request for `asked`, or
/// `None` when `outcome` is the answer. Each retry asks for fewer than the one before, so
/// asking again ends.
pub fn retry_count(asked: usize, outcome: &Outcome) -> Option<usize> {
    let fewer = match outcome {
        // The last points of a finite space are still worth trying.
        Outcome::Exhausted {
            remaining: Some(remaining),
        } => usize::try_from(*remaining).unwrap_or(usize::MAX),
        // A remote service does not say how many remain: one at a time, until none is left.
        Outcome::Exhausted { remaining: None } => 1,
        // Take what can be proposed now; the rest is asked for once trials finish.
        Outcome::NotReady {
            available: Some(available),
        } => *available,
        _ => return None,
    };
    (fewer > 0 && fewer < asked).then_some(fewer)
}

/// Merges `overrides` into `settings` by name: every setting of an override's name is
/// replaced by it, a new name is appended. Katib merges the settings a service hands back into
/// `Suggestion.status.algorithmSettings` this way, and those into the algorithm settings of the
/// next request.
pub fn merge_settings(
    settings: &mut Vec<api::AlgorithmSetting>,
    overrides: &[api::AlgorithmSetting],
) {
    for setting in overrides {
        settings.retain(|existing| existing.name != setting.name);
        settings.push(setting.clone());
    }
}

// === impl Suggester ===

impl Suggester {
    /// In process, or from the service at `suggestion_service` (`host:port` or a URL) when
    /// given.
    pub fn new(suggestion_service: Option<&str>) -> Suggester {
        Suggester {
            transport: match suggestion_service {
                Some(address) => Transport::Remote(RemoteSuggestionClient::new(address)),
                None => Transport::InProcess,
            },
            returned_settings: Vec::new(),
        }
    }

    /// The settings the algorithm handed back so far, as `(name, value)` pairs: the state a
    /// driver keeps between requests (Hyperband's bracket), in Katib's protocol.
    pub fn returned_settings(&self) -> Vec<(String, String)> {
        self.returned_settings
            .iter()
            .map(|setting| (setting.name.clone(), setting.value.clone()))
            .collect()
    }

    /// Restores the settings a previous suggester handed back (see
    /// [`Suggester::returned_settings`]), so a restarted driver carries on where it was.
    pub fn restore_returned_settings(&mut self, settings: &[(String, String)]) {
        self.returned_settings = settings
            .iter()
            .map(|(name, value)| api::AlgorithmSetting {
                name: name.clone(),
                value: value.clone(),
            })
            .collect();
    }

    /// Answers `request` by the rules of this module: its algorithm settings are overridden by
    /// the returned ones, it asks for at most [`MAX_REQUEST_NUMBER`], and for fewer when fewer
    /// can be given.
    pub async fn suggest(&mut self, mut request: api::GetSuggestionsRequest) -> Outcome {
        if let Some(algorithm) = request
            .experiment
            .as_mut()
            .and_then(|experiment| experiment.spec.as_mut())
            .and_then(|spec| spec.algorithm.as_mut())
        {
            merge_settings(&mut algorithm.algorithm_settings, &self.returned_settings);
        }
        // Katib's total counts the assignments made so far and this request's.
        let made = request
            .total_request_number
            .saturating_sub(request.current_request_number);
        let mut asked = request.current_request_number.min(MAX_REQUEST_NUMBER);
        loop {
            request.current_request_number = asked;
            request.total_request_number = made.saturating_add(asked);
            let outcome = self.transport.get_suggestions(request.clone()).await;
            let retry = usize::try_from(asked)
                .ok()
                .and_then(|asked| retry_count(asked, &outcome))
                .and_then(|count| i32::try_from(count).ok());
            match retry {
                Some(count) => asked = count,
                None => {
                    if let Outcome::Assignments(reply) = &outcome
                        && let Some(algorithm) = &reply.algorithm
                    {
                        merge_settings(&mut self.returned_settings, &algorithm.algorithm_settings);
                    }
                    return outcome;
                }
            }
        }
    }
}

// === impl Transport ===

impl Transport {
    async fn get_suggestions(&mut self, request: api::GetSuggestionsRequest) -> Outcome {
        match self {
            Transport::InProcess => match suggest_off_reactor(request).await {
                Ok(reply) => Outcome::Assignments(reply),
                Err(error) => Outcome::from(error),
            },
            Transport::Remote(client) => client.get_suggestions(request).await,
        }
    }
}

// === impl Outcome ===

impl From<Error> for Outcome {
    /// The service's own refusals, with the counts a remote client only sees as a gRPC code
    /// (see [`crate::error`]).
    fn from(error: Error) -> Outcome {
        match error {
            Error::Suggest(SuggestError::Exhausted { remaining, .. }) => Outcome::Exhausted {
                remaining: Some(remaining),
            },
            Error::Suggest(SuggestError::NotReady { available, .. }) => Outcome::NotReady {
                available: Some(available),
            },
            error => Outcome::Failed(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(name: &str, value: &str) -> api::AlgorithmSetting {
        api::AlgorithmSetting {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn fewer_remaining_than_asked_are_asked_for() {
        let exhausted = Outcome::Exhausted { remaining: Some(2) };
        assert_eq!(retry_count(5, &exhausted), Some(2));
        // None left, or the request already asked for no more than remain: the answer stands.
        assert_eq!(
            retry_count(5, &Outcome::Exhausted { remaining: Some(0) }),
            None
        );
        assert_eq!(retry_count(2, &exhausted), None);
    }

    #[test]
    fn fewer_available_than_asked_are_asked_for() {
        let not_ready = Outcome::NotReady { available: Some(3) };
        assert_eq!(retry_count(4, &not_ready), Some(3));
        assert_eq!(
            retry_count(4, &Outcome::NotReady { available: Some(0) }),
            None
        );
        // A remote service does not say how many are available: wait for running trials.
        assert_eq!(retry_count(4, &Outcome::NotReady { available: None }), None);
    }

    #[test]
    fn exhaustion_of_unknown_extent_is_retried_one_at_a_time() {
        let exhausted = Outcome::Exhausted { remaining: None };
        assert_eq!(retry_count(3, &exhausted), Some(1));
        assert_eq!(retry_count(1, &exhausted), None);
    }

    #[test]
    fn other_outcomes_are_final() {
        for outcome in [
            Outcome::Assignments(api::GetSuggestionsReply::default()),
            Outcome::Unreachable("down".into()),
            Outcome::Failed("bad".into()),
        ] {
            assert_eq!(retry_count(3, &outcome), None);
        }
    }

    #[test]
    fn overrides_replace_settings_of_their_name_and_append_new_ones() {
        let mut settings = vec![
            setting("eta", "3"),
            setting("r_l", "9"),
            setting("eta", "4"),
        ];
        merge_settings(
            &mut settings,
            &[setting("eta", "5"), setting("current_s", "1")],
        );
        assert_eq!(
            settings,
            vec![
                setting("r_l", "9"),
                setting("eta", "5"),
                setting("current_s", "1")
            ]
        );
    }

    #[test]
    fn the_services_counts_reach_the_policy() {
        let exhausted = Error::Suggest(SuggestError::Exhausted {
            remaining: 2,
            total: 4,
            requested: 3,
        });
        assert_eq!(
            Outcome::from(exhausted),
            Outcome::Exhausted { remaining: Some(2) }
        );
        let not_ready = Error::Suggest(SuggestError::NotReady {
            available: 1,
            reason: "rung running".into(),
        });
        assert_eq!(
            Outcome::from(not_ready),
            Outcome::NotReady { available: Some(1) }
        );
        assert!(matches!(
            Outcome::from(Error::Suggest(SuggestError::Cancelled)),
            Outcome::Failed(_)
        ));
    }
}
