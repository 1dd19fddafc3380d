//! Sextant's persistence: experiments, trials and observation logs in SQLite, PostgreSQL or
//! MySQL/MariaDB through sqlx, with one schema and migrations per backend, and Katib's
//! `DBManager` gRPC service over it.
//!
//! A URL picks the backend (`sqlite://PATH`, `postgres://...`, `mysql://...`); [`Store::connect`]
//! connects, migrates and hands back a cloneable [`Store`]. Queries are runtime queries, so a
//! build needs no database. Specs and statuses are JSON text owned by the experiment controller:
//! this crate must not depend on the controller (nor on kube); it depends only on
//! `sextant-proto` for the service.
//!
//! # Layout
//! - [`store`]: [`Store`], connecting, migrating, the per-backend pool.
//! - [`observation_log`]: reported metric points: append, read with filters, delete.
//! - [`experiments`]: experiment and trial records for the controller.
//! - [`pipeline_runs`], [`recurring_runs`]: pipeline runs and their schedules, as JSON records.
//! - [`artifacts`]: the names of the server's content-addressed artifact objects.
//! - [`service`]: the `api.v1.beta1.DBManager` gRPC service.
//! - [`time`]: how times are parsed, cut to microseconds, stored and printed.
//! - [`name_column`]: names read back from case-sensitive columns.
//! - [`database_url`]: backends by URL scheme; URLs with passwords redacted.
//! - [`error`]: [`Error`] and its mapping to gRPC statuses.

pub mod artifacts;
pub mod database_url;
pub mod error;
pub mod experiments;
pub mod name_column;
pub mod observation_log;
pub mod pipeline_runs;
pub mod recurring_runs;
pub mod service;
pub mod store;
pub mod time;

pub use artifacts::{ArtifactOwner, StepArtifact, StoredArtifact};
pub use database_url::{Backend, DEFAULT_DATABASE_URL};
pub use error::{Error, Result};
pub use experiments::{
    ExperimentRecord, MirroredTrial, NewTrial, StoredTrial, TrialConditionUpdate,
};
pub use observation_log::{MetricPoint, ObservationLogFilter};
pub use service::{
    BoundedDbManager, DbManagerService, ReportLimits, bounded_db_manager_service,
    db_manager_service,
};
pub use store::{Store, StoreConfig};
