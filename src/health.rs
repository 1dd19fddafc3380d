//! The `grpc.health.v1.Health` service for everything `sextant serve` runs.
//!
//! It answers SERVING for the empty name (the server as a whole), for each service's full
//! name, and for `manager.v1beta1.Suggestion`, the name Katib's controller puts in its gRPC
//! probes. Unknown names get NOT_FOUND, as the health protocol specifies.

use std::collections::BTreeSet;
use std::pin::Pin;

use sextant_proto::health::health_check_response::ServingStatus;
use sextant_proto::health::health_server::{Health, HealthServer};
use sextant_proto::health::{HealthCheckRequest, HealthCheckResponse};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

/// Health answers for a fixed set of service names.
#[derive(Debug, Clone)]
pub struct HealthService {
    serving: BTreeSet<String>,
}

impl HealthService {
    /// A health service that reports SERVING for `""` and each of `names`.
    pub fn new<I, S>(names: I) -> HealthService
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut serving: BTreeSet<String> = names.into_iter().map(Into::into).collect();
        serving.insert(String::new());
        serving.insert("grpc.health.v1.Health".into());
        HealthService { serving }
    }

    /// The service wrapped in its tonic server.
    pub fn into_server(self) -> HealthServer<HealthService> {
        HealthServer::new(self)
    }

    fn status(&self, service: &str) -> Result<HealthCheckResponse, Status> {
        if self.serving.contains(service) {
            Ok(HealthCheckResponse {
                status: ServingStatus::Serving as i32,
            })
        } else {
            Err(Status::not_found(format!("unknown service {service:?}")))
        }
    }
}

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.status(&request.into_inner().service)
            .map(Response::new)
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        // Statuses never change while the server runs, so the stream sends the current one and
        // then stays open until the client or the server goes away.
        let current = self.status(&request.into_inner().service)?;
        let stream = tokio_stream::StreamExt::chain(
            tokio_stream::once(Ok(current)),
            tokio_stream::pending(),
        );
        Ok(Response::new(Box::pin(stream)))
    }
}
