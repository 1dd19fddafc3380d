//! When a recurring run fires, as a pure function of what is observed (the schedule, the
//! time, the last firing started, the runs still active), with Kubeflow Pipelines'
//! RecurringRun semantics (its ScheduledWorkflow controller):
//! - a firing is a time the cron expression matches after the start time, after the last
//!   firing started, and not after the end time or now;
//! - at most `maxConcurrency` of the recurring run's runs are active at once: firings beyond
//!   that wait (they are not dropped) until runs end;
//! - `noCatchup`: when several firings were missed (the server was down, or runs were at the
//!   limit), only the latest is started; otherwise each is, oldest first.
//!
//! Cron expressions are parsed by croner, with five fields (minute precision, as Argo's
//! CronWorkflow) or six (seconds first, as KFP's); times are UTC.

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// A parsed schedule.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    cron: Cron,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
}

/// What the decision depends on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Observed {
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
    /// Parses `cron`; the error says why the expression is refused.
    pub(crate) fn parse(
        cron: &str,
        start: Option<DateTime<Utc>>,
        end: Option<DateTime<Utc>>,
    ) -> Result<Schedule, String> {
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(cron)
            .map_err(|error| error.to_string())?;
        if let (Some(start), Some(end)) = (start, end)
            && end <= start
        {
            return Err(format!("endTime {end} is not after startTime {start}"));
        }
        Ok(Schedule { cron, start, end })
    }

    /// The firings to start now, oldest first.
    pub(crate) fn due(&self, observed: &Observed) -> Vec<DateTime<Utc>> {
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
                .find_previous_occurrence(&limit, true)
                .ok()
                .filter(|latest| *latest > floor)
                .into_iter()
                .collect();
        }
        self.cron
            .iter_after(floor)
            .take_while(|firing| *firing <= limit)
            .take(capacity)
            .collect()
    }

    /// The next firing after `after`, if the schedule has one before its end.
    pub(crate) fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let after = match self.start {
            Some(start) if start > after => start - chrono::Duration::nanoseconds(1),
            _ => after,
        };
        let next = self.cron.find_next_occurrence(&after, false).ok()?;
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

    #[test]
    fn missed_firings_are_caught_up_oldest_first_within_the_concurrency_limit() {
        let hourly = Schedule::parse("0 * * * *", None, None).unwrap();
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
        let hourly = Schedule::parse("0 * * * *", None, None).unwrap();
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
        assert!(Schedule::parse("61 * * * *", None, None).is_err());
        assert!(
            Schedule::parse(
                "* * * * *",
                Some(at("2026-01-02T00:00:00Z")),
                Some(at("2026-01-01T00:00:00Z"))
            )
            .is_err()
        );
    }
}
