//! The shutdown signal: the first SIGINT or SIGTERM.

use std::future::Future;

use anyhow::Context;
use tokio::signal::unix::{SignalKind, signal};

/// Registers for SIGINT (Ctrl-C) and SIGTERM (Kubernetes, systemd) at once, so a signal that
/// arrives before the returned future is first polled is not lost, and resolves on the first.
pub fn shutdown() -> anyhow::Result<impl Future<Output = ()> + Send> {
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutdown signal received");
    })
}
