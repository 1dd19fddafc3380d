//! A small in-memory DBManager for these tests, served over real gRPC on loopback.
//!
//! The real DBManager lives in `sextant-store`; this crate must not depend on it, and these tests
//! are about delivery, so a server that records every request is enough. Each server
//! "incarnation" runs on its own tokio runtime; killing it shuts that runtime down, which drops
//! the listener and every open connection at once, as a crashed process would.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sextant_proto::api::db_manager_server::{DbManager, DbManagerServer};
use sextant_proto::api::{
    DeleteObservationLogReply, DeleteObservationLogRequest, GetObservationLogReply,
    GetObservationLogRequest, Metric, MetricLog, ObservationLog, ReportObservationLogReply,
    ReportObservationLogRequest,
};
use tonic::{Request, Response, Status};

/// One stored point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPoint {
    pub trial_name: String,
    pub name: String,
    pub value: String,
    pub time_stamp: String,
}

#[derive(Debug, Default)]
struct State {
    points: Mutex<Vec<StoredPoint>>,
    batch_sizes: Mutex<Vec<usize>>,
    /// Answer this many coming reports with `Unavailable`, storing nothing.
    fail_next: AtomicU64,
    /// Answer every report with `InvalidArgument`.
    reject_all: AtomicU64,
    /// Store this many coming reports but answer them with `Unavailable`, as when the reply is
    /// lost after the write.
    lose_ack_next: AtomicU64,
}

/// The recording DBManager; clones share their records.
#[derive(Clone, Debug, Default)]
pub struct RecordingDbManager {
    state: Arc<State>,
}

impl RecordingDbManager {
    pub fn points(&self) -> Vec<StoredPoint> {
        self.state.points.lock().unwrap().clone()
    }

    pub fn batch_sizes(&self) -> Vec<usize> {
        self.state.batch_sizes.lock().unwrap().clone()
    }

    pub fn fail_next(&self, count: u64) {
        self.state.fail_next.store(count, Ordering::SeqCst);
    }

    pub fn lose_ack_next(&self, count: u64) {
        self.state.lose_ack_next.store(count, Ordering::SeqCst);
    }

    pub fn reject_all(&self) {
        self.state.reject_all.store(1, Ordering::SeqCst);
    }

    /// The values stored for `name`, in arrival order.
    pub fn values_of(&self, name: &str) -> Vec<String> {
        self.points()
            .into_iter()
            .filter(|point| point.name == name)
            .map(|point| point.value)
            .collect()
    }

    /// Serves on `listener` until the returned server is killed or dropped.
    pub fn serve(&self, listener: std::net::TcpListener) -> RunningServer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let service = DbManagerServer::new(self.clone());
        listener.set_nonblocking(true).unwrap();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await
                .unwrap();
        });
        RunningServer {
            runtime: Some(runtime),
        }
    }

    /// Serves on a fresh loopback port.
    pub fn serve_anywhere(&self) -> (RunningServer, SocketAddr) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        (self.serve(listener), address)
    }
}

/// Binds `address` again after a server on it was killed, waiting for the old socket to close.
pub async fn rebind(address: SocketAddr) -> std::net::TcpListener {
    for _ in 0..100 {
        if let Ok(listener) = std::net::TcpListener::bind(address) {
            return listener;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("cannot bind {address} again");
}

/// A loopback address on which nothing listens (for now).
pub fn unused_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// One incarnation of the server.
pub struct RunningServer {
    runtime: Option<tokio::runtime::Runtime>,
}

impl RunningServer {
    /// Stops at once: listener and connections close, in-flight requests are cut.
    pub fn kill(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[tonic::async_trait]
impl DbManager for RecordingDbManager {
    async fn report_observation_log(
        &self,
        request: Request<ReportObservationLogRequest>,
    ) -> Result<Response<ReportObservationLogReply>, Status> {
        if self.state.reject_all.load(Ordering::SeqCst) > 0 {
            return Err(Status::invalid_argument("rejected by the test"));
        }
        let failing = self
            .state
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok();
        if failing {
            return Err(Status::unavailable("failing on purpose"));
        }
        let request = request.into_inner();
        let logs = request.observation_log.unwrap_or_default().metric_logs;
        self.state.batch_sizes.lock().unwrap().push(logs.len());
        let mut points = self.state.points.lock().unwrap();
        for log in logs {
            let metric = log.metric.unwrap_or_default();
            points.push(StoredPoint {
                trial_name: request.trial_name.clone(),
                name: metric.name,
                value: metric.value,
                time_stamp: log.time_stamp,
            });
        }
        let losing_ack = self
            .state
            .lose_ack_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok();
        if losing_ack {
            return Err(Status::unavailable(
                "stored, but the reply is lost on purpose",
            ));
        }
        Ok(Response::new(ReportObservationLogReply {}))
    }

    async fn get_observation_log(
        &self,
        request: Request<GetObservationLogRequest>,
    ) -> Result<Response<GetObservationLogReply>, Status> {
        let request = request.into_inner();
        let metric_logs = self
            .points()
            .into_iter()
            .filter(|point| point.trial_name == request.trial_name)
            .filter(|point| request.metric_name.is_empty() || point.name == request.metric_name)
            .map(|point| MetricLog {
                time_stamp: point.time_stamp,
                metric: Some(Metric {
                    name: point.name,
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
        let trial_name = request.into_inner().trial_name;
        self.state
            .points
            .lock()
            .unwrap()
            .retain(|point| point.trial_name != trial_name);
        Ok(Response::new(DeleteObservationLogReply {}))
    }
}
