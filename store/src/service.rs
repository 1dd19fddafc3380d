//! The `DBManager` gRPC service of Katib's `api.v1.beta1`, over a [`Store`].
//!
//! Semantics follow Katib's DB manager, which Katib's SDK (`report_metrics`), collectors and
//! early-stopping services call: a metric log with an empty `time_stamp` is skipped, any other
//! time stamp must be RFC 3339 (fractions of any length), the value is kept as reported, and
//! `GetObservationLog` returns points ordered by time with optional metric and inclusive time
//! filters. Where Katib would store something it cannot read back (an empty trial or metric
//! name, a missing metric) this service answers `INVALID_ARGUMENT` naming the field instead.
//! `ReportObservationLog` replies only after its transaction has committed, so an acknowledged
//! point survives the server being killed.
//!
//! [`bounded_db_manager_service`] bounds what the service holds in memory: a request larger
//! than [`ReportLimits::max_message_bytes`] is refused from its length prefix, before it is
//! read, and at most [`ReportLimits::concurrent_requests`] requests are read, decoded and
//! stored at once; the others wait unread, their bytes held back by HTTP/2 flow control.
//! A report's strings are moved, not copied, into the points stored.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use sextant_proto::api::db_manager_server::{DbManager, DbManagerServer};
use sextant_proto::api::{
    DeleteObservationLogReply, DeleteObservationLogRequest, GetObservationLogReply,
    GetObservationLogRequest, Metric, MetricLog, ObservationLog, ReportObservationLogReply,
    ReportObservationLogRequest,
};
use tokio::sync::Semaphore;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use crate::error::Error;
use crate::observation_log::{MetricPoint, ObservationLogFilter};
use crate::store::Store;
use crate::time::{format_rfc3339, parse_rfc3339};

/// Serves `api.v1.beta1.DBManager` from a store.
#[derive(Debug, Clone)]
pub struct DbManagerService {
    store: Store,
}

impl DbManagerService {
    /// A service writing to and reading from `store`.
    pub fn new(store: Store) -> DbManagerService {
        DbManagerService { store }
    }
}

/// The largest `DBManager` request `sextant serve` reads unless told otherwise: 4 MiB, the
/// gRPC default that Katib's own DB manager keeps. A report from Katib's SDK or a metrics
/// collector carries a few metric values (Sextant's collector sends batches of at most a few
/// thousand, well under 1 MiB); this holds about 90,000.
pub const DEFAULT_MAX_REPORT_BYTES: usize = 4 << 20;

/// The `DBManager` requests `sextant serve` reads and stores at once on a database server
/// unless told otherwise (on SQLite, one: it has a single writer).
pub const DEFAULT_CONCURRENT_REPORTS: usize = 4;

/// What the `DBManager` service holds in memory at most.
#[derive(Debug, Clone, Copy)]
pub struct ReportLimits {
    /// The largest request message, in bytes; larger ones are refused with `OUT_OF_RANGE`.
    pub max_message_bytes: usize,
    /// Requests read, decoded and stored at once; further ones wait their turn.
    pub concurrent_requests: usize,
}

impl Default for ReportLimits {
    fn default() -> ReportLimits {
        ReportLimits {
            max_message_bytes: DEFAULT_MAX_REPORT_BYTES,
            concurrent_requests: DEFAULT_CONCURRENT_REPORTS,
        }
    }
}

/// The tonic server for the `DBManager` service, ready to add to a `tonic::transport::Server`.
pub fn db_manager_service(store: Store) -> DbManagerServer<DbManagerService> {
    DbManagerServer::new(DbManagerService::new(store))
}

/// The `DBManager` service within `limits`, ready to add to a `tonic::transport::Server`.
pub fn bounded_db_manager_service(store: Store, limits: ReportLimits) -> BoundedDbManager {
    BoundedDbManager {
        inner: db_manager_service(store).max_decoding_message_size(limits.max_message_bytes),
        permits: Arc::new(Semaphore::new(limits.concurrent_requests.max(1))),
    }
}

/// The `DBManager` server behind a semaphore shared by all connections: a request is read and
/// decoded only once it holds a permit, so the bytes in flight are bounded by the permits times
/// the message limit, however many clients send at once.
#[derive(Debug, Clone)]
pub struct BoundedDbManager {
    inner: DbManagerServer<DbManagerService>,
    permits: Arc<Semaphore>,
}

impl NamedService for BoundedDbManager {
    const NAME: &'static str = <DbManagerServer<DbManagerService> as NamedService>::NAME;
}

impl Service<http::Request<tonic::body::Body>> for BoundedDbManager {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is decided per request in `call`, once a permit is held; the generated
        // server inside is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let permits = self.permits.clone();
        let mut inner = self.inner.clone();
        Box::pin(async move {
            // The semaphore is never closed, so acquiring only waits; the permit is held until
            // the handler has stored the report and its request is dropped.
            let _permit = permits.acquire_owned().await;
            inner.call(request).await
        })
    }
}

/// Turns a `ReportObservationLog` request into the trial's name and its points, converted one
/// by one as the store takes them: the request is consumed so its strings move into the points
/// instead of being copied, and a large report is never held twice. A malformed entry yields an
/// error naming its field, which makes the store roll the whole report back (a report is stored
/// entirely or not at all).
pub fn points_from_report(
    request: ReportObservationLogRequest,
) -> Result<
    (
        String,
        impl Iterator<Item = crate::error::Result<MetricPoint>>,
    ),
    Status,
> {
    if request.trial_name.is_empty() {
        return Err(Status::invalid_argument("trial_name must not be empty"));
    }
    let trial_name = request.trial_name;
    let metric_logs = request
        .observation_log
        .map(|log| log.metric_logs)
        .unwrap_or_default();
    let owner = trial_name.clone();
    let points = metric_logs
        .into_iter()
        .enumerate()
        // Katib skips entries without a time stamp rather than failing the report.
        .filter(|(_, metric_log)| !metric_log.time_stamp.is_empty())
        .map(move |(index, metric_log)| {
            let field = |name: &str| format!("observation_log.metric_logs[{index}].{name}");
            let timestamp = parse_rfc3339(&metric_log.time_stamp)
                .map_err(|reason| Error::invalid_input(field("time_stamp"), reason))?;
            let metric = metric_log
                .metric
                .ok_or_else(|| Error::invalid_input(field("metric"), "missing"))?;
            if metric.name.is_empty() {
                return Err(Error::invalid_input(
                    field("metric.name"),
                    "must not be empty",
                ));
            }
            Ok(MetricPoint {
                trial_name: owner.clone(),
                metric_name: metric.name,
                value: metric.value,
                timestamp,
            })
        });
    Ok((trial_name, points))
}

/// Turns a `GetObservationLog` request into a store filter; empty fields filter nothing.
pub fn filter_from_request(
    request: &GetObservationLogRequest,
) -> Result<ObservationLogFilter, Status> {
    if request.trial_name.is_empty() {
        return Err(Status::invalid_argument("trial_name must not be empty"));
    }
    let parse_bound = |field: &str, text: &str| {
        if text.is_empty() {
            return Ok(None);
        }
        parse_rfc3339(text)
            .map(Some)
            .map_err(|reason| Status::invalid_argument(format!("{field}: {reason}")))
    };
    Ok(ObservationLogFilter {
        trial_name: request.trial_name.clone(),
        metric_name: (!request.metric_name.is_empty()).then(|| request.metric_name.clone()),
        start_time: parse_bound("start_time", &request.start_time)?,
        end_time: parse_bound("end_time", &request.end_time)?,
    })
}

#[tonic::async_trait]
impl DbManager for DbManagerService {
    async fn report_observation_log(
        &self,
        request: Request<ReportObservationLogRequest>,
    ) -> Result<Response<ReportObservationLogReply>, Status> {
        let (trial_name, points) = points_from_report(request.into_inner())?;
        self.store
            .append_observation_log(&trial_name, points)
            .await
            .inspect_err(|error| {
                tracing::warn!(trial = %trial_name, error = %crate::error::error_chain(error), "report observation log failed");
            })?;
        Ok(Response::new(ReportObservationLogReply {}))
    }

    async fn get_observation_log(
        &self,
        request: Request<GetObservationLogRequest>,
    ) -> Result<Response<GetObservationLogReply>, Status> {
        let filter = filter_from_request(request.get_ref())?;
        let points = self.store.get_observation_log(&filter).await?;
        let metric_logs = points
            .into_iter()
            .map(|point| MetricLog {
                time_stamp: format_rfc3339(point.timestamp),
                metric: Some(Metric {
                    name: point.metric_name,
                    value: point.value,
                }),
            })
            .collect();
        Ok(Response::new(GetObservationLogReply {
            observation_log: Some(ObservationLog { metric_logs }),
        }))
    }

    async fn delete_observation_log(
        &self,
        request: Request<DeleteObservationLogRequest>,
    ) -> Result<Response<DeleteObservationLogReply>, Status> {
        let trial_name = &request.get_ref().trial_name;
        if trial_name.is_empty() {
            return Err(Status::invalid_argument("trial_name must not be empty"));
        }
        self.store.delete_observation_log(trial_name).await?;
        Ok(Response::new(DeleteObservationLogReply {}))
    }
}
