//! `sextant crd` and `sextant controller`: the Kubernetes mode's definitions and controller.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use sextant_controller::kube::{ApiGroup, ControllerConfig, crd::crd_documents};
use sextant_store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Arguments of `sextant controller`.
#[derive(Debug, clap::Args)]
pub struct ControllerArgs {
    /// The API group of the Experiment and Trial kinds to reconcile: sextant.dev, or
    /// kubeflow.org (Katib's, for a cluster without Katib; install `sextant crd --api-group
    /// kubeflow.org` first).
    #[arg(long, env = "SEXTANT_API_GROUP", default_value = "sextant.dev")]
    pub api_group: ApiGroup,
    /// Observation logs: a PostgreSQL or MySQL URL (SQLite works for a single-node test).
    #[arg(long, env = "SEXTANT_DB")]
    pub db: String,
    /// Where trials push metrics: the DBManager of `sextant serve`, as HOST:PORT.
    #[arg(
        long,
        env = "SEXTANT_DB_MANAGER",
        default_value = "sextant-serve.sextant-system.svc:6789"
    )]
    pub db_manager_address: String,
    /// A Katib-API Suggestion service to use instead of the in-process algorithms.
    #[arg(long, env = "SEXTANT_SUGGESTION_SERVICE")]
    pub suggestion_service: Option<String>,
    /// Watch only this namespace (default: all).
    #[arg(long, env = "SEXTANT_NAMESPACE")]
    pub namespace: Option<String>,
    /// HTTP `/healthz` and `/readyz` for the kubelet's probes.
    #[arg(long, env = "SEXTANT_HEALTH_LISTEN", default_value = "127.0.0.1:8080")]
    pub health_listen: SocketAddr,
    /// Seconds between looks at an active trial (its metrics arrive in the store, not as
    /// Kubernetes events).
    #[arg(long, env = "SEXTANT_POLL_INTERVAL", default_value_t = 10.0)]
    pub poll_interval: f64,
    /// This replica's name in the events it records (set from the pod's name by the
    /// Deployment).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
}

/// Arguments of `sextant crd`.
#[derive(Debug, clap::Args)]
pub struct CrdArgs {
    /// Write each definition to DIR/<name>.yaml (as `deploy/crds/` holds them) instead of
    /// printing one multi-document stream.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
    /// The API group of the definitions: sextant.dev, or kubeflow.org (Katib's own group and
    /// names, for a cluster without Katib).
    #[arg(long, default_value = "sextant.dev")]
    pub api_group: ApiGroup,
}

/// Prints the CustomResourceDefinitions, or writes them one file each.
pub fn crd(args: &CrdArgs) -> anyhow::Result<()> {
    for (name, yaml) in crd_documents(args.api_group)? {
        match &args.dir {
            Some(dir) => {
                let path = dir.join(format!("{name}.yaml"));
                std::fs::write(&path, yaml)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            None => println!("---\n{yaml}"),
        }
    }
    Ok(())
}

/// What every cluster process starts with: a client of the API server (that of `KUBECONFIG`, or
/// `~/.kube/config`, or the in-cluster service account), the store at `db`, and `/healthz` and
/// `/readyz` served on `health_listen` for the kubelet's probes.
pub(crate) async fn connect(
    db: &str,
    health_listen: SocketAddr,
) -> anyhow::Result<(kube::Client, Store)> {
    let client = kube::Client::try_default()
        .await
        .context("cannot reach the Kubernetes API server")?;
    let store = Store::connect(db).await?;
    let listener = TcpListener::bind(health_listen)
        .await
        .with_context(|| format!("cannot listen on {health_listen}"))?;
    tokio::spawn(serve_health(listener));
    Ok((client, store))
}

/// Runs the controller until `shutdown`; the cluster is the one of `KUBECONFIG` (or
/// `~/.kube/config`), or the in-cluster service account.
pub async fn controller(
    args: ControllerArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if !(args.poll_interval.is_finite() && args.poll_interval > 0.0) {
        anyhow::bail!("--poll-interval must be a positive number of seconds");
    }
    let (client, store) = connect(&args.db, args.health_listen).await?;
    let config = ControllerConfig {
        api_group: args.api_group,
        namespace: args.namespace,
        db_manager_address: args.db_manager_address,
        suggestion_service: args.suggestion_service,
        poll_interval: Duration::try_from_secs_f64(args.poll_interval)
            .context("--poll-interval is out of range")?,
        reporter: "sextant-controller".into(),
        instance: args.pod_name,
    };
    tracing::info!(namespace = ?config.namespace, api_group = %config.api_group, "controller starting");
    sextant_controller::kube::run(client, store, config, shutdown).await;
    tracing::info!("controller stopped");
    Ok(())
}

/// Answers the kubelet's HTTP probes: 200 for `/healthz` and `/readyz`, 404 otherwise. The
/// controllers run in this process, so answering at all is the health.
async fn serve_health(listener: TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: wait instead of spinning.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        tokio::spawn(async move {
            let mut request = [0u8; 1024];
            let read = stream.read(&mut request).await.unwrap_or(0);
            let line = String::from_utf8_lossy(&request[..read]);
            let path = line.split_whitespace().nth(1).unwrap_or_default();
            let (status, body) = match path {
                "/healthz" | "/readyz" => ("200 OK", "ok\n"),
                _ => ("404 Not Found", "not found\n"),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}
