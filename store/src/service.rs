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

use sextant_proto::api::db_manager_server::{DbManager, DbManagerServer};
use sextant_proto::api::{
    DeleteObservationLogReply, DeleteObservationLogRequest, GetObservationLogReply,
    GetObservationLogRequest, Metric, MetricLog, ObservationLog, ReportObservationLogReply,
    ReportObservationLogRequest,
};
use tonic::{Request, Response, Status};

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

/// The tonic server for the `DBManager` service, ready to add to a `tonic::transport::Server`.
pub fn db_manager_service(store: Store) -> DbManagerServer<DbManagerService> {
    DbManagerServer::new(DbManagerService::new(store))
}

/// Turns a `ReportObservationLog` request into the points to store, refusing it whole when any
/// entry is malformed (so a report is stored entirely or not at all).
pub fn points_from_report(
    request: &ReportObservationLogRequest,
) -> Result<Vec<MetricPoint>, Status> {
    if request.trial_name.is_empty() {
        return Err(Status::invalid_argument("trial_name must not be empty"));
    }
    let Some(observation_log) = &request.observation_log else {
        return Ok(Vec::new());
    };
    let mut points = Vec::with_capacity(observation_log.metric_logs.len());
    for (index, metric_log) in observation_log.metric_logs.iter().enumerate() {
        // Katib skips entries without a time stamp rather than failing the report.
        if metric_log.time_stamp.is_empty() {
            continue;
        }
        let timestamp = parse_rfc3339(&metric_log.time_stamp).map_err(|reason| {
            Status::invalid_argument(format!(
                "observation_log.metric_logs[{index}].time_stamp: {reason}"
            ))
        })?;
        let Some(metric) = &metric_log.metric else {
            return Err(Status::invalid_argument(format!(
                "observation_log.metric_logs[{index}].metric is missing"
            )));
        };
        if metric.name.is_empty() {
            return Err(Status::invalid_argument(format!(
                "observation_log.metric_logs[{index}].metric.name must not be empty"
            )));
        }
        points.push(MetricPoint {
            trial_name: request.trial_name.clone(),
            metric_name: metric.name.clone(),
            value: metric.value.clone(),
            timestamp,
        });
    }
    Ok(points)
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
        let request = request.into_inner();
        let points = points_from_report(&request)?;
        self.store
            .report_observation_log(&request.trial_name, &points)
            .await
            .inspect_err(|error| {
                tracing::warn!(trial = %request.trial_name, error = %crate::error::error_chain(error), "report observation log failed");
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
