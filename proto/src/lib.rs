//! Protocol definitions that Sextant speaks on the wire, and nothing else.
//!
//! `api.v1.beta1` is Katib's manager API (services `Suggestion`, `EarlyStopping` and `DBManager`),
//! written from Katib's published field list: package, service, message and field names, field
//! numbers and enum values are identical, so method paths such as
//! `/api.v1.beta1.Suggestion/GetSuggestions` and the bytes on the wire match what Katib's
//! controller and SDK send. `grpc.health.v1` is the standard health protocol used by Kubernetes
//! gRPC probes.
//!
//! This crate depends on no other crate of the workspace; code generation runs with protox, so no
//! system `protoc` is needed.

/// Katib's `api.v1.beta1` manager API.
#[allow(missing_docs, clippy::all)]
pub mod api {
    tonic::include_proto!("api.v1.beta1");
}

/// The standard gRPC health checking protocol.
#[allow(missing_docs, clippy::all)]
pub mod health {
    tonic::include_proto!("grpc.health.v1");
}

/// The full gRPC service names, as health checks and reflection spell them.
pub mod service_names {
    /// Katib's Suggestion service.
    pub const SUGGESTION: &str = "api.v1.beta1.Suggestion";
    /// Katib's EarlyStopping service.
    pub const EARLY_STOPPING: &str = "api.v1.beta1.EarlyStopping";
    /// Katib's DBManager service.
    pub const DB_MANAGER: &str = "api.v1.beta1.DBManager";
    /// The name Katib's controller puts in the gRPC probes of suggestion containers
    /// (`DefaultGRPCService`); it is not the real service name, but probes must be answered.
    pub const KATIB_PROBE_SUGGESTION: &str = "manager.v1beta1.Suggestion";
}

/// The largest gRPC message Sextant's servers and clients accept: 64 MiB, room for a request
/// carrying the history of ~100,000 trials, while a client cannot make a server allocate
/// without bound (tonic's default of 4 MiB is too small for long experiments).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// HTTP/2 flow-control window per stream for Sextant's servers: a GetSuggestions request with
/// a long history (about 200 bytes per trial) then arrives without waiting for window updates,
/// which at the 64 KiB default more than doubled its latency over loopback at 1,000 trials.
pub const STREAM_WINDOW_BYTES: u32 = 1 << 20;

/// HTTP/2 flow-control window per connection, room for several such streams at once.
pub const CONNECTION_WINDOW_BYTES: u32 = 4 << 20;
