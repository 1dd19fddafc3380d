//! When a recurring run fires, as a pure function of what is observed (the schedule, the
//! time, the last firing started, the runs still active), with Kubeflow Pipelines'
//! RecurringRun semantics (its ScheduledWorkflow controller). `sextant server`'s scheduler and
//! the cluster's RecurringRun controller both decide with it, so a schedule fires the same
//! way wherever it runs:
//! - a firing is a time the cron expression matches after the start time, after the last
//!   firing started, and not after the end time or now;
//! - at most `maxConcurrency` of the recurring run's runs are active at once (1 to
//!   [`MAX_CONCURRENCY`], default [`MAX_CONCURRENCY`]): firings beyond that wait (they are not
//!   dropped) until runs end;
//! - `noCatchup`: when several firings were missed (the scheduler was down, or runs were at
//!   the limit), only the latest is started; otherwise each is, oldest first.
//!
//! Cron expressions are parsed by croner, with five fields (minute precision, as Argo's
//! CronWorkflow) or six (seconds first, as KFP's). They are read in the schedule's IANA time
//! zone (UTC unless given): `0 9 * * *` in `Europe/Paris` fires at nine on Paris's clock,
//! summer and winter. Across a daylight-saving change croner's rules hold: a time the clocks
//! skip fires at the first instant after the gap, and a time they repeat fires once, at its
//! first occurrence. Every instant in and out is UTC.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// The most runs of one recurring run active at once, and the default: Kubeflow Pipelines'.
pub const MAX_CONCURRENCY: usize = 10;

/// Why a schedule or its concurrency is refused; [`ScheduleError::field`] names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error("{reason}")]
    Cron {
        /// croner's reason.
        reason: String,
    },
    /// The time zone is not an IANA name.
    #[error("{} is not an IANA time zone name (such as Europe/Paris or UTC)", sextant_echo::echo_quoted(.name))]
    TimeZone {
        /// The name given.
        name: String,
    },
    /// The end is not after the start.
    #[error("endTime {end} is not after startTime {start}")]
    EndNotAfterStart {
        /// The start time.
        start: DateTime<Utc>,
        /// The end time.
        end: DateTime<Utc>,
    },
    /// `maxConcurrency` is out of range.
    #[error("{value} is not in 1..={MAX_CONCURRENCY}")]
    MaxConcurrency {
        /// The value given.
        value: u64,
    },
}

impl ScheduleError {
    /// The field at fault, as a path from a recurring run's spec (`schedule.cron`).
    pub fn field(&self) -> &'static str {
        match self {
            ScheduleError::Cron { .. } => "schedule.cron",
            ScheduleError::TimeZone { .. } => "schedule.timeZone",
            ScheduleError::EndNotAfterStart { .. } => "schedule.endTime",
            ScheduleError::MaxConcurrency { .. } => "maxConcurrency",
        }
    }
}

/// The concurrency limit a recurring run asks for: [`MAX_CONCURRENCY`] when unset.
pub fn max_concurrency(requested: Option<u64>) -> Result<usize, ScheduleError> {
    match requested {
        None => Ok(MAX_CONCURRENCY),
        Some(value) => usize::try_from(value)
            .ok()
            .filter(|limit| (1..=MAX_CONCURRENCY).contains(limit))
            .ok_or(ScheduleError::MaxConcurrency { value }),
    }
}

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    /// The zone the cron fields are read in.
    zone: Tz,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
}

/// What the decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct Observed {
    /// Now.
    pub now: DateTime<Utc>,
    /// When the recurring run was created: no firing before it.
    pub created: DateTime<Utc>,
    /// The last firing started, if any.
    pub last_fired: Option<DateTime<Utc>>,
    /// Its runs still pending or running.
    pub active: usize,
    /// The most runs active at once.
    pub max_concurrency: usize,
    /// Start only the latest missed firing.
    pub no_catchup: bool,
    /// Disabled recurring runs fire nothing.
    pub enabled: bool,
}

impl Schedule {
    /// Parses `cron`, read in `time_zone` (an IANA name; UTC when `None`), firing between
    /// `start` and `end`; the error names the first field at fault, in that order.
    pub fn parse(
        cron: &str,
        time_zone: Option<&str>,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    ) -> Result<Schedule, ScheduleError> {
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(cron)
            .map_err(|error| ScheduleError::Cron {
                reason: error.to_string(),
            })?;
        let zone = match time_zone {
            None => Tz::UTC,
            Some(name) => name.parse().map_err(|_| ScheduleError::TimeZone {
                name: name.to_owned(),
            })?,
        };
        if let (Some(start), Some(end)) = (start, end)
            && end <= start
        {
            return Err(ScheduleError::EndNotAfterStart { start, end });
        }
        Ok(Schedule {
            cron,
            zone,
            start,
            end,
        })
    }

    /// The firings to start now, oldest first.
    pub fn due(&self, observed: &Observed) -> Vec<DateTime<Utc>> {
        if !observed.enabled {
            return Vec::new();
        }
        let capacity = observed.max_concurrency.saturating_sub(observed.active);
        if capacity == 0 {
            return Vec::new();
        }
        // Firings are after this instant (the start time itself may fire).
        let floor = [
            Some(observed.created),
            self.start
                .map(|start| start - chrono::Duration::nanoseconds(1)),
            observed.last_fired,
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(observed.created);
        let limit = match self.end {
            Some(end) => end.min(observed.now),
            None => observed.now,
        };
        if observed.no_catchup {
            return self
                .cron
                .find_previous_occurrence(&limit.with_timezone(&self.zone), true)
                .ok()
                .map(|latest| latest.with_timezone(&Utc))
                .filter(|latest| *latest > floor)
                .into_iter()
                .collect();
        }
        self.cron
            .iter_after(floor.with_timezone(&self.zone))
            .map(|firing| firing.with_timezone(&Utc))
            .take_while(|firing| *firing <= limit)
            .take(capacity)
            .collect()
    }

    /// The next firing after `after`, if the schedule has one before its end.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let after = match self.start {
            Some(start) if start > after => start - chrono::Duration::nanoseconds(1),
            _ => after,
        };
        let next = self
            .cron
            .find_next_occurrence(&after.with_timezone(&self.zone), false)
            .ok()?
            .with_timezone(&Utc);
        match self.end {
            Some(end) if next > end => None,
            _ => Some(next),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn observed(now: &str) -> Observed {
        Observed {
            now: at(now),
            created: at("2026-01-01T00:00:00Z"),
            last_fired: None,
            active: 0,
            max_concurrency: 10,
            no_catchup: false,
            enabled: true,
        }
    }

    fn utc(cron: &str) -> Schedule {
        Schedule::parse(cron, None, None, None).unwrap()
    }

    #[test]
    fn missed_firings_are_caught_up_oldest_first_within_the_concurrency_limit() {
        let hourly = utc("0 * * * *");
        let mut now = observed("2026-01-01T03:30:00Z");
        assert_eq!(
            hourly.due(&now),
            vec![
                at("2026-01-01T01:00:00Z"),
                at("2026-01-01T02:00:00Z"),
                at("2026-01-01T03:00:00Z")
            ]
        );
        now.max_concurrency = 3;
        now.active = 1;
        assert_eq!(
            hourly.due(&now),
            vec![at("2026-01-01T01:00:00Z"), at("2026-01-01T02:00:00Z")]
        );
        now.active = 3;
        assert!(hourly.due(&now).is_empty(), "at the limit, firings wait");
        now.active = 0;
        now.last_fired = Some(at("2026-01-01T02:00:00Z"));
        assert_eq!(hourly.due(&now), vec![at("2026-01-01T03:00:00Z")]);
        now.last_fired = Some(at("2026-01-01T03:00:00Z"));
        assert!(hourly.due(&now).is_empty(), "a firing starts once");
    }

    #[test]
    fn no_catchup_starts_only_the_latest_missed_firing() {
        let hourly = utc("0 * * * *");
        let mut now = observed("2026-01-01T05:10:00Z");
        now.no_catchup = true;
        now.last_fired = Some(at("2026-01-01T01:00:00Z"));
        assert_eq!(hourly.due(&now), vec![at("2026-01-01T05:00:00Z")]);
        now.last_fired = Some(at("2026-01-01T05:00:00Z"));
        assert!(hourly.due(&now).is_empty());
    }

    #[test]
    fn start_end_and_enabled_bound_the_firings() {
        let every_second = Schedule::parse(
            "* * * * * *",
            None,
            Some(at("2026-01-01T00:00:10Z")),
            Some(at("2026-01-01T00:00:12Z")),
        )
        .unwrap();
        let now = observed("2026-01-01T00:01:00Z");
        assert_eq!(
            every_second.due(&now),
            vec![
                at("2026-01-01T00:00:10Z"),
                at("2026-01-01T00:00:11Z"),
                at("2026-01-01T00:00:12Z")
            ],
            "from the start to the end"
        );
        assert!(
            every_second
                .due(&Observed {
                    enabled: false,
                    ..now
                })
                .is_empty()
        );
        assert_eq!(
            every_second.next_after(at("2026-01-01T00:00:00Z")),
            Some(at("2026-01-01T00:00:10Z"))
        );
        assert_eq!(every_second.next_after(at("2026-01-01T00:00:12Z")), None);
    }

    #[test]
    fn each_refusal_names_its_field() {
        let field = |result: Result<Schedule, ScheduleError>| result.unwrap_err().field();
        assert_eq!(
            field(Schedule::parse("61 * * * *", None, None, None)),
            "schedule.cron"
        );
        let unknown_zone = Schedule::parse("* * * * *", Some("Mars/Olympus_Mons"), None, None);
        assert_eq!(
            unknown_zone.as_ref().unwrap_err().to_string(),
            "\"Mars/Olympus_Mons\" is not an IANA time zone name (such as Europe/Paris or UTC)"
        );
        assert_eq!(field(unknown_zone), "schedule.timeZone");
        assert_eq!(
            field(Schedule::parse(
                "* * * * *",
                None,
                Some(at("2026-01-02T00:00:00Z")),
                Some(at("2026-01-01T00:00:00Z"))
            )),
            "schedule.endTime"
        );
        assert_eq!(max_concurrency(None), Ok(MAX_CONCURRENCY));
        assert_eq!(max_concurrency(Some(1)), Ok(1));
        for refused in [0, 11, u64::MAX] {
            let error = max_concurrency(Some(refused)).unwrap_err();
            assert_eq!(error.field(), "maxConcurrency");
            assert_eq!(error.to_string(), format!("{refused} is not in 1..=10"));
        }
    }

    #[test]
    fn cron_fields_are_read_on_the_clock_of_the_time_zone_summer_and_winter() {
        let nine_in_paris = Schedule::parse("0 9 * * *", Some("Europe/Paris"), None, None).unwrap();
        // Winter: Paris is UTC+1; summer: UTC+2.
        assert_eq!(
            nine_in_paris.next_after(at("2026-01-15T00:00:00Z")),
            Some(at("2026-01-15T08:00:00Z"))
        );
        assert_eq!(
            nine_in_paris.next_after(at("2026-07-15T00:00:00Z")),
            Some(at("2026-07-15T07:00:00Z"))
        );
        let mut now = observed("2026-03-30T12:00:00Z");
        now.last_fired = Some(at("2026-03-28T08:00:00Z"));
        assert_eq!(
            nine_in_paris.due(&now),
            vec![at("2026-03-29T07:00:00Z"), at("2026-03-30T07:00:00Z")],
            "the firings on either side of the spring change are 23 hours apart"
        );
        now.no_catchup = true;
        assert_eq!(nine_in_paris.due(&now), vec![at("2026-03-30T07:00:00Z")]);
    }

    #[test]
    fn across_daylight_saving_changes_a_skipped_time_fires_after_the_gap_and_a_repeated_one_once() {
        // New York skips 02:00 to 03:00 on 8 March 2026 and repeats 01:00 to 02:00 on
        // 1 November 2026.
        let half_past_two = Schedule::parse("30 2 * * *", Some("America/New_York"), None, None)
            .expect("a schedule");
        assert_eq!(
            half_past_two.next_after(at("2026-03-08T05:00:00Z")),
            Some(at("2026-03-08T07:00:00Z")),
            "02:30 does not exist that day: the first instant after the gap, 03:00 EDT"
        );
        let half_past_one = Schedule::parse("30 1 * * *", Some("America/New_York"), None, None)
            .expect("a schedule");
        let mut now = observed("2026-11-02T12:00:00Z");
        now.last_fired = Some(at("2026-10-31T05:30:00Z"));
        assert_eq!(
            half_past_one.due(&now),
            vec![at("2026-11-01T05:30:00Z"), at("2026-11-02T06:30:00Z")],
            "01:30 EDT fires, 01:30 EST (an hour later) does not"
        );
    }
}
