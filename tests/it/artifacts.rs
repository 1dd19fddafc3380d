//! Artifacts in object storage through a real `sextant server`: a pipeline's file and
//! directory artifacts and a trial's output log are kept content-addressed (SHA-256) when the
//! step or trial ends, downloaded from the storage (not the working directories, which the
//! tests remove), survive a SIGKILL and a restart, and go with their run or experiment.
//!
//! Run against a local directory (`file://`, the default) and against Garage, a real
//! S3-compatible server on loopback (`scripts/garage`; `.ci/run` starts it and names it in
//! `SEXTANT_TEST_GARAGE_DIR`, otherwise the test starts one under `target/garage`).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::ServerProcess;

/// Where a server keeps its artifacts, and a view of the same storage to check it.
struct Storage {
    /// `--artifacts`, or none for the default directory (`<data dir>/artifacts`).
    url: Option<String>,
    /// Environment variables the server needs to reach it.
    env: Vec<(String, String)>,
    objects: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
}

impl Storage {
    async fn holds(&self, digest: &str) -> bool {
        let key = self.prefix.child("sha256").child(digest);
        match self.objects.head(&key).await {
            Ok(_) => true,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(error) => panic!("cannot look at {key}: {error}"),
        }
    }

    fn start_server(&self, dir: &Path) -> ServerProcess {
        let args: Vec<&str> = match &self.url {
            Some(url) => vec!["--artifacts", url],
            None => vec![],
        };
        ServerProcess::start_with(dir, &args, &self.env).expect("sextant server starts")
    }
}

/// The Garage testbed's directory, started once per test run.
fn garage() -> &'static PathBuf {
    static GARAGE: OnceLock<PathBuf> = OnceLock::new();
    GARAGE.get_or_init(|| {
        if let Some(dir) = std::env::var_os("SEXTANT_TEST_GARAGE_DIR") {
            return PathBuf::from(dir);
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = root.join("target").join("garage");
        let status = Command::new(root.join("scripts").join("garage"))
            .arg("start")
            .arg(&dir)
            .stdout(Stdio::null())
            .status()
            .expect("run scripts/garage");
        assert!(status.success(), "scripts/garage start failed");
        dir
    })
}

fn garage_storage(prefix: &str) -> Storage {
    let text = std::fs::read_to_string(garage().join("s3.env")).expect("the Garage environment");
    let env: BTreeMap<String, String> = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    let bucket = env["SEXTANT_TEST_S3_URL"].clone();
    let objects = object_store::aws::AmazonS3Builder::new()
        .with_url(&bucket)
        .with_endpoint(&env["AWS_ENDPOINT"])
        .with_region(&env["AWS_REGION"])
        .with_access_key_id(&env["AWS_ACCESS_KEY_ID"])
        .with_secret_access_key(&env["AWS_SECRET_ACCESS_KEY"])
        .with_allow_http(true)
        .build()
        .expect("an S3 client for Garage");
    Storage {
        url: Some(format!("{bucket}/{prefix}")),
        env: env
            .into_iter()
            .filter(|(key, _)| key.starts_with("AWS_"))
            .collect(),
        objects: Arc::new(objects),
        prefix: ObjectPath::from(prefix),
    }
}

fn directory_storage(dir: &Path) -> Storage {
    let artifacts = dir.join("data").join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    Storage {
        url: None,
        env: Vec::new(),
        objects: Arc::new(
            object_store::local::LocalFileSystem::new_with_prefix(&artifacts)
                .expect("the artifacts directory"),
        ),
        prefix: ObjectPath::default(),
    }
}

/// 300 kB that differ per `seed`, so each test's objects are its own.
fn model_bytes(seed: &str) -> Vec<u8> {
    (0..300_000u32)
        .map(|index| (index.wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed.len() as u8)
        .chain(seed.bytes())
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// `make` writes a file artifact (`model`, from a file the test wrote) and a directory
/// artifact (`report`); `check` reads the model back through its input path.
fn pipeline(model_source: &Path) -> Value {
    json!({
        "apiVersion": "sextant.dev/v1beta1",
        "kind": "Pipeline",
        "metadata": {"name": "artifacts"},
        "spec": {
            "steps": [
                {
                    "name": "make",
                    "command": ["python3", "-c",
                        "import os, shutil, sys; shutil.copy(sys.argv[1], 'model.bin'); os.makedirs('report/plots'); open('report/summary.txt', 'w').write('loss 0.5\\n'); open('report/plots/a.csv', 'w').write('x,y\\n1,2\\n')",
                        model_source.display().to_string()],
                    "outputs": {"artifacts": [
                        {"name": "model", "path": "model.bin"},
                        {"name": "report", "path": "report"}
                    ]}
                },
                {
                    "name": "check",
                    "command": ["python3", "-c",
                        "import sys; print(len(open(sys.argv[1], 'rb').read()))",
                        "{{steps.make.outputs.artifacts.model}}"]
                }
            ]
        }
    })
}

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

async fn download(client: &reqwest::Client, url: &str) -> (reqwest::StatusCode, String, Vec<u8>) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_string())
        .unwrap_or_default();
    (
        status,
        content_type,
        response.bytes().await.unwrap().to_vec(),
    )
}

async fn wait_for<F, Fut>(what: &str, mut probe: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The files of a tar archive, by path.
fn untar(bytes: &[u8]) -> BTreeMap<String, String> {
    let mut archive = tar::Archive::new(bytes);
    let mut files = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type().is_file() {
            let path = entry.path().unwrap().display().to_string();
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            files.insert(path, text);
        }
    }
    files
}

/// The whole round trip on one storage, made for the server's directory.
async fn artifacts_round_trip(storage: impl FnOnce(&Path) -> Storage, seed: &str) {
    let dir = tempfile::tempdir().unwrap();
    let storage = storage(dir.path());
    let client = reqwest::Client::new();
    let model = model_bytes(seed);
    let source = dir.path().join("model-source.bin");
    std::fs::write(&source, &model).unwrap();
    let mut server = storage.start_server(dir.path());

    // A run: its artifacts are kept when `make` succeeds, by digest.
    let response = client
        .post(server.url("/runs"))
        .json(&json!({"pipeline": pipeline(&source), "runId": "kept"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let listed = wait_for("the run's artifacts to be kept", || {
        let (client, url, runs) = (
            client.clone(),
            server.url("/runs/kept/artifacts"),
            server.url("/runs/kept"),
        );
        async move {
            let run = get_json(&client, &runs).await;
            assert_ne!(run["phase"], "Failed", "{run}");
            let listed = get_json(&client, &url).await;
            let all_kept = listed["artifacts"].as_array().is_some_and(|artifacts| {
                artifacts.len() == 2 && artifacts.iter().all(|a| a["digest"].is_string())
            });
            (run["phase"] == "Succeeded" && all_kept).then_some(listed)
        }
    })
    .await;
    let by_name: BTreeMap<&str, &Value> = listed["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|artifact| (artifact["name"].as_str().unwrap(), artifact))
        .collect();
    let model_digest = sha256_hex(&model);
    assert_eq!(
        by_name["model"]["digest"],
        model_digest.as_str(),
        "{listed}"
    );
    assert_eq!(by_name["model"]["size"], model.len());
    assert_eq!(by_name["model"]["archive"], false);
    assert_eq!(by_name["report"]["archive"], true);
    let report_digest = by_name["report"]["digest"].as_str().unwrap().to_string();
    assert!(
        storage.holds(&model_digest).await,
        "the model's object is stored"
    );
    assert!(
        storage.holds(&report_digest).await,
        "the report's object is stored"
    );

    // An experiment: each trial's output log is kept when the trial ends.
    let spec = r#"
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata: {name: logs-kept}
spec:
  objective: {type: minimize, objectiveMetricName: loss}
  algorithm: {algorithmName: grid}
  parallelTrialCount: 2
  maxTrialCount: 2
  parameters:
    - {name: x, parameterType: int, feasibleSpace: {min: "1", max: "2"}}
  trialTemplate:
    trialParameters: [{name: x, reference: x}]
    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Process
      spec:
        command: [python3, -c, "import sys; print('epoch 1'); print('loss=' + sys.argv[1])", "${trialParameters.x}"]
"#;
    let response = client
        .post(server.url("/experiments"))
        .header("content-type", "application/yaml")
        .body(spec)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let trials = wait_for("the experiment's logs to be kept", || {
        let (client, api) = (client.clone(), server.url(""));
        async move {
            let trials = get_json(&client, &format!("{api}/experiments/logs-kept/trials")).await;
            let names: Vec<String> = trials["trials"]
                .as_array()?
                .iter()
                .filter(|trial| trial["condition"] == "Succeeded")
                .map(|trial| trial["name"].as_str().unwrap().to_string())
                .collect();
            if names.len() < 2 {
                return None;
            }
            for name in &names {
                let kept = get_json(&client, &format!("{api}/trials/{name}/artifacts")).await;
                if kept["artifacts"].as_array()?.is_empty() {
                    return None;
                }
            }
            Some(json!(names))
        }
    })
    .await;
    let trial = trials[0].as_str().unwrap().to_string();
    let kept = get_json(&client, &server.url(&format!("/trials/{trial}/artifacts"))).await;
    let log_artifact = &kept["artifacts"][0];
    assert_eq!(log_artifact["name"], "output.log", "{kept}");
    let log_digest = log_artifact["digest"].as_str().unwrap().to_string();
    assert!(
        storage.holds(&log_digest).await,
        "the log's object is stored"
    );

    // SIGKILL, remove every working directory: what is read back comes from the storage.
    server.child.kill().expect("SIGKILL the server");
    server.child.wait().unwrap();
    std::fs::remove_dir_all(dir.path().join("data").join("runs")).unwrap();
    std::fs::remove_dir_all(dir.path().join("data").join("experiments")).unwrap();
    let server = storage.start_server(dir.path());

    let (status, content_type, bytes) =
        download(&client, &server.url("/runs/kept/artifacts/make/model")).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(content_type, "application/octet-stream");
    assert!(bytes == model, "the model comes back byte for byte");
    let (status, content_type, bytes) =
        download(&client, &server.url("/runs/kept/artifacts/make/report")).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(content_type, "application/x-tar");
    assert_eq!(sha256_hex(&bytes), report_digest);
    assert_eq!(
        untar(&bytes),
        BTreeMap::from([
            ("plots/a.csv".to_string(), "x,y\n1,2\n".to_string()),
            ("summary.txt".to_string(), "loss 0.5\n".to_string()),
        ])
    );
    let (status, _, log) = download(&client, &server.url(&format!("/trials/{trial}/log"))).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let log = String::from_utf8(log).unwrap();
    assert!(log.contains("epoch 1") && log.contains("loss="), "{log:?}");
    let (_, _, tail) = download(&client, &server.url(&format!("/trials/{trial}/log?tail=1"))).await;
    assert!(String::from_utf8(tail).unwrap().starts_with("loss="));
    let (status, _, bytes) = download(
        &client,
        &server.url(&format!("/trials/{trial}/artifacts/output.log")),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    assert_eq!(sha256_hex(&bytes), log_digest);

    // The same bytes from a second run are one object; deleting one run keeps it for the
    // other, deleting both removes it.
    let response = client
        .post(server.url("/runs"))
        .json(&json!({"pipeline": pipeline(&source), "runId": "again", "cache": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    wait_for("the second run's artifacts to be kept", || {
        let (client, url, run) = (
            client.clone(),
            server.url("/runs/again/artifacts"),
            server.url("/runs/again"),
        );
        async move {
            if get_json(&client, &run).await["phase"] != "Succeeded" {
                return None;
            }
            let listed = get_json(&client, &url).await;
            let digests: Vec<&str> = listed["artifacts"]
                .as_array()?
                .iter()
                .filter_map(|artifact| artifact["digest"].as_str())
                .collect();
            (digests.len() == 2).then_some(listed.clone())
        }
    })
    .await;
    let response = client
        .delete(server.url("/runs/kept"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::NO_CONTENT);
    assert_eq!(
        client
            .get(server.url("/runs/kept"))
            .send()
            .await
            .unwrap()
            .status(),
        reqwest::StatusCode::NOT_FOUND
    );
    assert!(storage.holds(&model_digest).await, "still the second run's");
    let response = client
        .delete(server.url("/runs/again"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::NO_CONTENT);
    assert!(
        !storage.holds(&model_digest).await,
        "gone with its last run"
    );
    assert!(
        !storage.holds(&report_digest).await,
        "gone with its last run"
    );

    // Deleting the experiment takes its trials' logs.
    let response = client
        .delete(server.url("/experiments/logs-kept"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::NO_CONTENT);
    assert!(
        !storage.holds(&log_digest).await,
        "gone with its experiment"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_round_trip_through_the_default_local_directory() {
    artifacts_round_trip(directory_storage, "directory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_round_trip_through_garage() {
    let prefix = format!("round-trip-{}", std::process::id());
    artifacts_round_trip(|_| garage_storage(&prefix), "garage").await;
}

#[test]
fn an_unusable_artifacts_url_stops_the_server_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--artifacts",
            "gs://bucket/x",
        ])
        .arg("--db")
        .arg(format!(
            "sqlite://{}",
            dir.path().join("sextant.db").display()
        ))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--artifacts \"gs://bucket/x\"") && stderr.contains("s3://BUCKET"),
        "{stderr}"
    );
}
