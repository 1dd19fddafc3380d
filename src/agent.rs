//! `sextant persistence-agent`: mirrors a cluster's pipeline runs, experiments and trials into
//! the store `sextant server` reads (the logic is `sextant_controller::kube::persistence`).

use std::future::Future;
use std::net::SocketAddr;

use sextant_controller::kube::ApiGroup;
use sextant_controller::kube::persistence::PersistenceAgentConfig;

/// Arguments of `sextant persistence-agent`.
#[derive(Debug, clap::Args)]
pub struct PersistenceAgentArgs {
    /// The store `sextant server` reads: a PostgreSQL or MySQL URL (SQLite for a single-node
    /// test).
    #[arg(long, env = "SEXTANT_DB")]
    pub db: String,
    /// The API group of the Experiment and Trial kinds to mirror (the controller's).
    #[arg(long, env = "SEXTANT_API_GROUP", default_value = "sextant.dev")]
    pub api_group: ApiGroup,
    /// Mirror only this namespace (default: all).
    #[arg(long, env = "SEXTANT_NAMESPACE")]
    pub namespace: Option<String>,
    /// HTTP `/healthz` and `/readyz` for the kubelet's probes.
    #[arg(long, env = "SEXTANT_HEALTH_LISTEN", default_value = "127.0.0.1:8080")]
    pub health_listen: SocketAddr,
}

/// Runs the agent until `shutdown`; the cluster is the one of `KUBECONFIG` (or
/// `~/.kube/config`), or the in-cluster service account.
pub async fn persistence_agent(
    args: PersistenceAgentArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (client, store) = crate::cluster::connect(&args.db, args.health_listen).await?;
    let config = PersistenceAgentConfig {
        api_group: args.api_group,
        namespace: args.namespace,
    };
    sextant_controller::kube::persistence::run(client, store, config, shutdown).await;
    Ok(())
}
