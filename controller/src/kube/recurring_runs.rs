//! The RecurringRun controller: PipelineRuns created from a template on a cron schedule, with
//! the rules of [`sextant_pipeline::schedule`] (the ones `sextant server` fires by), never more
//! than `maxConcurrency` active, catching up missed firings or not as `noCatchup` says.
//!
//! [`plan`] decides from what is observed (the spec, the status, now, the creation time and
//! the recurring run's PipelineRuns); [`reconcile`] observes and carries the plan out.
//!
//! Each firing is a PipelineRun named after its scheduled time, `<recurring-run>-<unix
//! seconds>` ([`run_name`]), owned by the RecurringRun, labelled [`RECURRING_RUN_LABEL`] and
//! annotated [`SCHEDULED_TIME_ANNOTATION`]. So a firing happens at most once whatever
//! crashes: a controller killed between the create and the status write finds the run at its
//! next reconcile, and would a stale view make it try again, the API server refuses the second
//! create as `AlreadyExists`. The last firing is the latest of `status.lastFiringTime` and the
//! runs' annotations, so a status write that never happened loses nothing either.
//!
//! The runs are listed from the API server at each reconcile rather than read from a watch
//! cache: a cache that has not yet seen the runs just created would count fewer active runs
//! than there are, and let a firing past `maxConcurrency`. The watch of the runs only wakes
//! the recurring run, so a run that ends frees its slot at once.
//!
//! Firings missed while the recurring run was disabled are caught up once it is enabled again
//! unless `noCatchup` is set, as Kubeflow Pipelines' ScheduledWorkflow does.

use crate::kube::patch_status;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kube::api::{ListParams, PostParams};
use kube::runtime::controller::Action as ControllerAction;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use sextant_pipeline::schedule::{self, Schedule, ScheduleError};
use sha2::{Digest, Sha256};

use crate::kube::convert::chrono_time;
use crate::kube::pipeline_resources::{
    PipelineRun, PipelineRunPhase, RecurringRun, RecurringRunSpec, RecurringRunStatus,
    set_condition,
};
use crate::kube::{Context, ReconcileError, is_conflict};

/// The label naming a PipelineRun's recurring run (shortened as [`label_value`] says).
pub const RECURRING_RUN_LABEL: &str = "sextant.dev/recurring-run";

/// The annotation holding a PipelineRun's scheduled time (RFC 3339, UTC).
pub const SCHEDULED_TIME_ANNOTATION: &str = "sextant.dev/scheduled-time";

/// The condition saying whether the spec can be fired by.
const VALID: &str = "Valid";

/// The longest name of a run and value of a label: a label value's limit, and what the
/// Workflow and pods a run becomes can carry.
const NAME_LIMIT: usize = 63;

/// How many hex digits of the digest stand for the cut part of a long name.
const DIGEST_LENGTH: usize = 10;

/// One of the recurring run's PipelineRuns.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ObservedRun {
    /// Its name.
    pub name: String,
    /// Its scheduled time, from its annotation (none if the annotation was removed).
    pub scheduled: Option<DateTime<Utc>>,
    /// Not yet `Succeeded`, `Failed` or `Error`.
    pub active: bool,
}

/// What a plan is made from.
#[derive(Debug, Clone)]
pub(crate) struct Observed<'a> {
    /// The recurring run's name.
    pub name: &'a str,
    /// Its spec.
    pub spec: &'a RecurringRunSpec,
    /// Its status as last written.
    pub status: Option<&'a RecurringRunStatus>,
    /// The generation of its spec.
    pub generation: Option<i64>,
    /// When it was created: it fires nothing scheduled before.
    pub created: DateTime<Utc>,
    /// Now.
    pub now: DateTime<Utc>,
    /// Its PipelineRuns.
    pub runs: Vec<ObservedRun>,
}

/// A PipelineRun to create.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Firing {
    /// The run's name, derived from the time.
    pub name: String,
    /// The scheduled time.
    pub scheduled: DateTime<Utc>,
}

/// What the controller does.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Create the run of a firing (already fired if it exists).
    CreateRun(Firing),
    /// Write the status (when it differs from the one observed).
    SetStatus(RecurringRunStatus),
}

/// When the recurring run needs looking at again, beyond any change of it or of its runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Wake {
    /// At its next firing.
    At(DateTime<Utc>),
    /// A firing is due but every slot is taken: soon, in case a run's end was not seen.
    WhenRunsEnd,
    /// Only on a change (invalid, disabled, or past its end).
    OnChange,
}

/// What to do, in order, and when to look again.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    /// The actions, creates first.
    pub actions: Vec<Action>,
    /// When to look again.
    pub wake: Wake,
}

/// Decides what a recurring run does now.
pub(crate) fn plan(observed: &Observed<'_>) -> Plan {
    let spec = observed.spec;
    let previous = observed.status.cloned().unwrap_or_default();
    let last_fired = observed
        .runs
        .iter()
        .filter_map(|run| run.scheduled)
        .chain(previous.last_firing_time)
        .max();
    let mut active: Vec<String> = observed
        .runs
        .iter()
        .filter(|run| run.active)
        .map(|run| run.name.clone())
        .collect();
    let mut status = RecurringRunStatus {
        last_firing_time: last_fired,
        next_firing_time: None,
        active: Vec::new(),
        conditions: previous.conditions.clone(),
        observed_generation: observed.generation,
    };
    let (schedule, max_concurrency) = match validate(spec) {
        Ok(valid) => valid,
        Err(errors) => {
            let message = errors
                .iter()
                .map(|error| format!("spec.{}: {error}", error.field()))
                .collect::<Vec<_>>()
                .join("; ");
            set_condition(
                &mut status.conditions,
                VALID,
                false,
                "InvalidSpec",
                &message,
                observed.now,
            );
            active.sort();
            status.active = active;
            return Plan {
                actions: vec![Action::SetStatus(status)],
                wake: Wake::OnChange,
            };
        }
    };
    set_condition(
        &mut status.conditions,
        VALID,
        true,
        "ScheduleValid",
        "the schedule is valid",
        observed.now,
    );
    let enabled = spec.enabled.unwrap_or(true);
    let due = schedule.due(&schedule::Observed {
        now: observed.now,
        created: observed.created,
        last_fired,
        active: active.len(),
        max_concurrency,
        no_catchup: spec.no_catchup,
        enabled,
    });
    let mut actions: Vec<Action> = due
        .iter()
        .map(|&scheduled| {
            Action::CreateRun(Firing {
                name: run_name(observed.name, scheduled),
                scheduled,
            })
        })
        .collect();
    let last_fired = due.last().copied().or(last_fired);
    active.extend(
        due.iter()
            .map(|&scheduled| run_name(observed.name, scheduled)),
    );
    let at_limit = active.len() >= max_concurrency;
    active.sort();
    status.last_firing_time = last_fired;
    status.active = active;
    // The next firing after the last one started: in the past when a firing waits for a slot.
    let pending = schedule.next_after(last_fired.unwrap_or(observed.created));
    let wake = match pending {
        Some(_) if !enabled => Wake::OnChange,
        Some(next) if next <= observed.now && at_limit => Wake::WhenRunsEnd,
        Some(_) => match schedule.next_after(observed.now) {
            Some(next) => Wake::At(next),
            None => Wake::OnChange,
        },
        None => Wake::OnChange,
    };
    if enabled {
        status.next_firing_time =
            schedule.next_after(observed.now.max(last_fired.unwrap_or(observed.created)));
    }
    actions.push(Action::SetStatus(status));
    Plan { actions, wake }
}

/// The schedule and concurrency limit of `spec`, or every field at fault.
fn validate(spec: &RecurringRunSpec) -> Result<(Schedule, usize), Vec<ScheduleError>> {
    let cron = &spec.schedule;
    let parsed = Schedule::parse(
        &cron.cron,
        cron.time_zone.as_deref(),
        cron.start_time,
        cron.end_time,
    );
    let limit = schedule::max_concurrency(spec.max_concurrency.map(u64::from));
    match (parsed, limit) {
        (Ok(parsed), Ok(limit)) => Ok((parsed, limit)),
        (parsed, limit) => Err(parsed.err().into_iter().chain(limit.err()).collect()),
    }
}

/// The name of the run of the firing at `scheduled`: `<recurring-run>-<unix seconds>`,
/// shortened as [`fit`] does.
pub(crate) fn run_name(recurring_run: &str, scheduled: DateTime<Utc>) -> String {
    fit(recurring_run, &format!("-{}", scheduled.timestamp()))
}

/// The value of [`RECURRING_RUN_LABEL`] on the runs of `recurring_run`: its name, shortened as
/// [`fit`] does (a name may have 253 characters, a label value 63).
pub fn label_value(recurring_run: &str) -> String {
    fit(recurring_run, "")
}

/// `prefix` then `suffix` when they fit in [`NAME_LIMIT`]; else as much of `prefix` as fits
/// beside a digest of the whole of it, so that two long names sharing their start still differ.
fn fit(prefix: &str, suffix: &str) -> String {
    if prefix.len() + suffix.len() <= NAME_LIMIT {
        return format!("{prefix}{suffix}");
    }
    let digest = sextant_pipeline::cache::hex(&Sha256::digest(prefix.as_bytes()));
    let kept = NAME_LIMIT - suffix.len() - DIGEST_LENGTH - 1;
    // Names are ASCII (DNS subdomains); a cut must not leave `-` or `.` before the `-`.
    let head: String = prefix.chars().take(kept).collect();
    let head = head.trim_end_matches(['-', '.']);
    format!("{head}-{}{suffix}", &digest[..DIGEST_LENGTH])
}

// === I/O ===

pub(super) async fn reconcile(
    resource: Arc<RecurringRun>,
    context: Arc<Context>,
) -> Result<ControllerAction, ReconcileError> {
    if resource.metadata.deletion_timestamp.is_some() {
        return Ok(ControllerAction::await_change());
    }
    let namespace = resource.namespace().unwrap_or_default();
    let name = resource.name_any();
    let runs_api: Api<PipelineRun> = Api::namespaced(context.client.clone(), &namespace);
    // A list, not a cache: see the module's documentation.
    let selector = format!("{RECURRING_RUN_LABEL}={}", label_value(&name));
    let listed = runs_api
        .list(&ListParams::default().labels(&selector))
        .await?;
    let uid = resource.uid();
    let runs = listed
        .items
        .iter()
        // Not a leftover of a deleted recurring run of the same name.
        .filter(|run| {
            run.owner_references()
                .iter()
                .any(|owner| Some(&owner.uid) == uid.as_ref())
        })
        .map(observed_run)
        .collect();
    let now = Utc::now();
    let observed = Observed {
        name: &name,
        spec: &resource.spec,
        status: resource.status.as_ref(),
        generation: resource.metadata.generation,
        created: resource
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(|time| chrono_time(time.0))
            .unwrap_or(now),
        now,
        runs,
    };
    let plan = plan(&observed);
    for action in &plan.actions {
        match action {
            Action::CreateRun(firing) => {
                let run = new_run(&resource, firing);
                match runs_api.create(&PostParams::default(), &run).await {
                    Ok(_) => {
                        tracing::info!(recurring_run = %name, run = %firing.name, "firing");
                    }
                    // Fired before: by this controller before a crash, or from a stale view.
                    Err(kube::Error::Api(status)) if status.code == 409 => {}
                    Err(error) => return Err(error.into()),
                }
            }
            Action::SetStatus(status) => write_status(&resource, status, &context).await?,
        }
    }
    context.succeeded(&key(&resource));
    Ok(match plan.wake {
        // A moment past the firing, so the clock has reached it when the reconcile runs.
        Wake::At(next) => ControllerAction::requeue(
            (next - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(5),
        ),
        Wake::WhenRunsEnd => ControllerAction::requeue(context.config.poll_interval),
        Wake::OnChange => ControllerAction::await_change(),
    })
}

pub(super) fn error_policy(
    resource: Arc<RecurringRun>,
    error: &ReconcileError,
    context: Arc<Context>,
) -> ControllerAction {
    let key = key(&resource);
    if is_conflict(error) {
        tracing::debug!(recurring_run = %key, %error, "write conflict; retrying on the fresh object");
    } else {
        tracing::warn!(recurring_run = %key, %error, "reconcile failed; retrying");
    }
    ControllerAction::requeue(context.retry_delay(key, error))
}

fn key(resource: &RecurringRun) -> String {
    ObjectRef::from_obj(resource).to_string()
}

fn observed_run(run: &PipelineRun) -> ObservedRun {
    let phase = run.status.as_ref().and_then(|status| status.phase);
    ObservedRun {
        name: run.name_any(),
        scheduled: run
            .annotations()
            .get(SCHEDULED_TIME_ANNOTATION)
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .map(|time| time.with_timezone(&Utc)),
        active: !matches!(
            phase,
            Some(PipelineRunPhase::Succeeded | PipelineRunPhase::Failed | PipelineRunPhase::Error)
        ),
    }
}

/// The run of `firing`: the template's spec, owned by the recurring run.
fn new_run(recurring_run: &RecurringRun, firing: &Firing) -> PipelineRun {
    let mut run = PipelineRun::new(&firing.name, recurring_run.spec.run_template.clone());
    run.metadata.namespace = recurring_run.namespace();
    run.metadata.labels = Some(
        [(
            RECURRING_RUN_LABEL.to_owned(),
            label_value(&recurring_run.name_any()),
        )]
        .into(),
    );
    run.metadata.annotations = Some(
        [(
            SCHEDULED_TIME_ANNOTATION.to_owned(),
            firing
                .scheduled
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        )]
        .into(),
    );
    run.metadata.owner_references = recurring_run
        .controller_owner_ref(&())
        .map(|owner| vec![owner]);
    run
}

/// Writes `status` when it differs from the observed one, as a merge patch conditional on the
/// version read, so a write from a stale view is refused (409) and retried on the fresh object.
async fn write_status(
    resource: &RecurringRun,
    status: &RecurringRunStatus,
    context: &Context,
) -> Result<(), ReconcileError> {
    if resource.status.as_ref() == Some(status) {
        return Ok(());
    }
    let runs: Api<RecurringRun> = Api::namespaced(
        context.client.clone(),
        &resource.namespace().unwrap_or_default(),
    );
    patch_status(
        &runs,
        resource,
        resource.status.as_ref(),
        status,
        "a recurring run's status",
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::pipeline_resources::{CronSchedule, PipelineRunSpec, ResourceCondition};

    /// The `Valid` condition of a status, if any.
    fn valid_condition(status: &RecurringRunStatus) -> Option<&ResourceCondition> {
        status
            .conditions
            .iter()
            .find(|condition| condition.type_ == VALID)
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn spec(cron: &str) -> RecurringRunSpec {
        RecurringRunSpec {
            run_template: PipelineRunSpec {
                pipeline_spec: None,
                pipeline_ref: None,
                params: Vec::new(),
                service_account_name: None,
            },
            schedule: CronSchedule {
                cron: cron.into(),
                time_zone: None,
                start_time: None,
                end_time: None,
            },
            max_concurrency: None,
            no_catchup: false,
            enabled: None,
        }
    }

    /// The plan for `spec` at `now` (created at midnight), with `runs`.
    fn plan_at(spec: &RecurringRunSpec, now: &str, runs: Vec<ObservedRun>) -> Plan {
        plan(&Observed {
            name: "nightly",
            spec,
            status: None,
            generation: Some(3),
            created: at("2026-01-01T00:00:00Z"),
            now: at(now),
            runs,
        })
    }

    fn run(scheduled: &str, active: bool) -> ObservedRun {
        let scheduled = at(scheduled);
        ObservedRun {
            name: run_name("nightly", scheduled),
            scheduled: Some(scheduled),
            active,
        }
    }

    fn created(plan: &Plan) -> Vec<String> {
        plan.actions
            .iter()
            .filter_map(|action| match action {
                Action::CreateRun(firing) => Some(firing.name.clone()),
                Action::SetStatus(_) => None,
            })
            .collect()
    }

    fn status(plan: &Plan) -> &RecurringRunStatus {
        match plan.actions.last() {
            Some(Action::SetStatus(status)) => status,
            other => panic!("the last action writes the status, not {other:?}"),
        }
    }

    #[test]
    fn each_firing_creates_a_run_named_after_its_time_and_wakes_at_the_next() {
        let minutely = spec("* * * * *");
        let plan = plan_at(&minutely, "2026-01-01T00:02:30Z", Vec::new());
        assert_eq!(
            created(&plan),
            ["nightly-1767225660", "nightly-1767225720"],
            "00:01 and 00:02, oldest first"
        );
        let status = status(&plan);
        assert_eq!(status.last_firing_time, Some(at("2026-01-01T00:02:00Z")));
        assert_eq!(status.next_firing_time, Some(at("2026-01-01T00:03:00Z")));
        assert_eq!(status.active, ["nightly-1767225660", "nightly-1767225720"]);
        assert_eq!(status.observed_generation, Some(3));
        assert_eq!(
            valid_condition(status).map(|condition| condition.status.as_str()),
            Some("True")
        );
        assert_eq!(plan.wake, Wake::At(at("2026-01-01T00:03:00Z")));
    }

    #[test]
    fn the_last_firing_comes_from_the_runs_when_the_status_write_was_lost() {
        // A controller killed after creating the 00:02 run and before writing the status.
        let minutely = spec("* * * * *");
        let runs = vec![
            run("2026-01-01T00:01:00Z", false),
            run("2026-01-01T00:02:00Z", true),
        ];
        let plan = plan_at(&minutely, "2026-01-01T00:02:30Z", runs);
        assert!(created(&plan).is_empty(), "nothing fires twice");
        assert_eq!(status(&plan).active, ["nightly-1767225720"]);
        assert_eq!(
            status(&plan).last_firing_time,
            Some(at("2026-01-01T00:02:00Z"))
        );
    }

    #[test]
    fn firings_wait_while_max_concurrency_runs_are_active_and_then_catch_up() {
        let mut limited = spec("* * * * *");
        limited.max_concurrency = Some(2);
        let busy = vec![
            run("2026-01-01T00:01:00Z", true),
            run("2026-01-01T00:02:00Z", true),
        ];
        let plan = plan_at(&limited, "2026-01-01T00:05:30Z", busy);
        assert!(created(&plan).is_empty());
        assert_eq!(plan.wake, Wake::WhenRunsEnd);
        assert_eq!(status(&plan).active.len(), 2);

        let one_ended = vec![
            run("2026-01-01T00:01:00Z", false),
            run("2026-01-01T00:02:00Z", true),
        ];
        let plan = plan_at(&limited, "2026-01-01T00:05:30Z", one_ended);
        assert_eq!(
            created(&plan),
            [run_name("nightly", at("2026-01-01T00:03:00Z"))]
        );
        assert_eq!(plan.wake, Wake::WhenRunsEnd, "00:04 and 00:05 still wait");

        let mut skipping = limited.clone();
        skipping.no_catchup = true;
        let one_ended = vec![
            run("2026-01-01T00:01:00Z", false),
            run("2026-01-01T00:02:00Z", true),
        ];
        let plan = plan_at(&skipping, "2026-01-01T00:05:30Z", one_ended);
        assert_eq!(
            created(&plan),
            [run_name("nightly", at("2026-01-01T00:05:00Z"))],
            "noCatchup: only the latest missed firing"
        );
        assert_eq!(plan.wake, Wake::At(at("2026-01-01T00:06:00Z")));
    }

    #[test]
    fn a_disabled_or_ended_recurring_run_fires_nothing_and_waits_for_a_change() {
        let mut disabled = spec("* * * * *");
        disabled.enabled = Some(false);
        let plan = plan_at(&disabled, "2026-01-01T00:05:30Z", Vec::new());
        assert!(created(&plan).is_empty());
        assert_eq!(status(&plan).next_firing_time, None);
        assert_eq!(plan.wake, Wake::OnChange);

        let mut ended = spec("* * * * *");
        ended.schedule.end_time = Some(at("2026-01-01T00:01:00Z"));
        let runs = vec![run("2026-01-01T00:01:00Z", false)];
        let plan = plan_at(&ended, "2026-01-01T00:05:30Z", runs);
        assert!(created(&plan).is_empty());
        assert_eq!(plan.wake, Wake::OnChange);
    }

    #[test]
    fn an_invalid_spec_is_a_condition_naming_every_field_and_creates_nothing() {
        let mut invalid = spec("61 * * * *");
        invalid.max_concurrency = Some(11);
        let plan = plan_at(&invalid, "2026-01-01T00:05:30Z", Vec::new());
        assert_eq!(plan.actions.len(), 1, "only the status");
        assert_eq!(plan.wake, Wake::OnChange);
        let condition = valid_condition(status(&plan)).expect("a Valid condition");
        assert_eq!(condition.status, "False");
        assert_eq!(condition.reason.as_deref(), Some("InvalidSpec"));
        let message = condition.message.as_deref().unwrap_or_default();
        assert!(message.starts_with("spec.schedule.cron: "), "{message}");
        assert!(
            message.ends_with("; spec.maxConcurrency: 11 is not in 1..=10"),
            "{message}"
        );

        let mut unknown_zone = spec("* * * * *");
        unknown_zone.schedule.time_zone = Some("Mars/Olympus_Mons".into());
        let plan = plan_at(&unknown_zone, "2026-01-01T00:05:30Z", Vec::new());
        let condition = valid_condition(status(&plan)).expect("a Valid condition");
        assert!(
            condition
                .message
                .as_deref()
                .is_some_and(|message| message.starts_with("spec.schedule.timeZone: ")),
            "{condition:?}"
        );
    }

    #[test]
    fn long_names_are_shortened_with_a_digest_and_stay_distinct() {
        let firing = at("2026-01-01T00:00:00Z");
        assert_eq!(run_name("nightly", firing), "nightly-1767225600");
        let long = "a".repeat(60);
        let other = format!("{}b", "a".repeat(59));
        let name = run_name(&long, firing);
        assert_eq!(name.len(), NAME_LIMIT);
        assert!(name.ends_with("-1767225600"), "{name}");
        assert_ne!(name, run_name(&other, firing));
        assert_eq!(label_value("nightly"), "nightly");
        let label = label_value(&"x.y-".repeat(70));
        assert!(label.len() <= NAME_LIMIT, "{label}");
        assert!(!label.contains(".-") && !label.contains("--"), "{label}");
    }
}
