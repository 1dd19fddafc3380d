//! Shared helpers: starting `sextant serve` as a child process on a free port, and the Python
//! virtualenv with Katib's PyPI SDK for interop tests.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running `sextant serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub address: SocketAddr,
    _scratch: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts `sextant serve --listen 127.0.0.1:0 EXTRA...` with a fresh SQLite store in a
    /// temporary directory, and waits for its address.
    pub fn start(extra: &[&str]) -> anyhow::Result<Server> {
        let scratch = tempfile::tempdir()?;
        let db = format!("sqlite://{}", scratch.path().join("sextant.db").display());
        let mut server = Server::start_with_db(&db, extra)?;
        server._scratch = Some(scratch);
        Ok(server)
    }

    /// Starts `sextant serve --listen 127.0.0.1:0 --db DB EXTRA...` and waits for its address.
    pub fn start_with_db(db: &str, extra: &[&str]) -> anyhow::Result<Server> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sextant"))
            .args(["serve", "--listen", "127.0.0.1:0", "--db", db])
            .args(extra)
            .env("SEXTANT_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawn sextant serve")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let Some(line) = lines.next() else { break };
            let line = line?;
            if let Some(address) = line.strip_prefix("listening on ") {
                let address = address.trim().parse()?;
                // Keep draining stdout so the server never blocks on a full pipe.
                std::thread::spawn(move || for _ in lines {});
                return Ok(Server {
                    child,
                    address,
                    _scratch: None,
                });
            }
        }
        let _ = child.kill();
        bail!("sextant serve did not report its address")
    }

    /// `http://ADDR`, for tonic clients.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

static VENV: Mutex<Option<PathBuf>> = Mutex::new(None);

/// What the virtualenv must pass to be reused: Katib's stubs import, and the `kubernetes` client
/// is older than 36. Newer clients, which PyPI resolves for kubeflow-katib 0.19 by default, name
/// their types in a way the SDK's own deserializer does not read (`dict[str, str]`, and from 37
/// `List[...]`, where it expects `dict(str, str)` and `list[...]`): `KatibClient` then cannot
/// read back a Trial (labels) or, from 37, any object at all (`managedFields`), whoever serves it.
const KATIB_VENV_CHECK: &str = "import kubeflow.katib.katib_api_pb2_grpc, kubernetes; \
    assert int(kubernetes.__version__.split('.')[0]) < 36";

/// The Python interpreter of `target/katib-venv` (or of `$SEXTANT_TEST_KATIB_VENV`, where CI
/// keeps it outside the clone), with `kubeflow-katib` and a `kubernetes` client it works with
/// installed (created on first use; later runs reuse it).
pub fn katib_python() -> anyhow::Result<PathBuf> {
    let mut guard = VENV.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(python) = guard.as_ref() {
        return Ok(python.clone());
    }
    let venv = std::env::var_os("SEXTANT_TEST_KATIB_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/katib-venv"));
    let python = venv.join("bin/python");
    let ready = python.exists()
        && Command::new(&python)
            .args(["-c", KATIB_VENV_CHECK])
            .status()
            .map(|status| status.success())
            .unwrap_or(false);
    if !ready {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        run(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "kubeflow-katib",
            "kubernetes<36",
        ]))?;
    }
    *guard = Some(python.clone());
    Ok(python)
}

/// Runs `command`; a failure to start it or a non-zero exit is an error naming it.
pub fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("run {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

/// A scratch directory for one end-to-end test: experiment files, their scripts, trial
/// directories and a SQLite store, so nothing lands in the source tree.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    /// Copies the files of `examples/<name>` into the scratch directory.
    pub fn copy_example(&self, name: &str) {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        for entry in std::fs::read_dir(examples.join(name)).expect("example directory") {
            let path = entry.expect("entry").path();
            if path.is_file() {
                std::fs::copy(
                    &path,
                    self.path().join(path.file_name().expect("file name")),
                )
                .expect("copy");
            }
        }
    }

    pub fn db(&self) -> String {
        format!("sqlite://{}", self.path().join("store.db").display())
    }

    /// `sextant ARGS...` to run in the scratch directory.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sextant"));
        command
            .args(args)
            .current_dir(self.path())
            .env("SEXTANT_LOG", "warn");
        command
    }

    /// Runs `sextant ARGS...` to the end.
    pub fn output(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run sextant")
    }

    /// `sextant run FILE --db DB --json`: the output and the printed Experiment.
    pub fn run(&self, file: impl AsRef<Path>) -> (Output, serde_json::Value) {
        self.run_with(file, &[])
    }

    /// `sextant run FILE --db DB --json EXTRA...`.
    pub fn run_with(&self, file: impl AsRef<Path>, extra: &[&str]) -> (Output, serde_json::Value) {
        let file = file.as_ref().display().to_string();
        let output = self
            .command(&["run", &file, "--db", &self.db(), "--json"])
            .args(extra)
            .output()
            .expect("run sextant");
        let json = serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null);
        (output, json)
    }

    /// The trials of `experiment`, from `sextant get trials -o json`.
    pub fn trials(&self, experiment: &str) -> Vec<serde_json::Value> {
        let output = self.output(&[
            "get",
            "trials",
            experiment,
            "--db",
            &self.db(),
            "-o",
            "json",
        ]);
        assert!(output.status.success(), "{}", explain(&output));
        serde_json::from_slice(&output.stdout).expect("trials json")
    }
}

/// A command's exit code and output, for assertion messages.
pub fn explain(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A `sextant server` child on a free loopback port, killed when dropped.
pub struct ServerProcess {
    pub child: Child,
    pub address: SocketAddr,
}

impl ServerProcess {
    /// Starts `sextant server` with its store and data directory in `dir`.
    pub fn start(dir: &Path) -> anyhow::Result<ServerProcess> {
        ServerProcess::start_with(dir, &[], &[])
    }

    /// Starts `sextant server` with its store and data directory in `dir`, more arguments and
    /// more environment variables.
    pub fn start_with(
        dir: &Path,
        args: &[&str],
        env: &[(String, String)],
    ) -> anyhow::Result<ServerProcess> {
        let db = format!("sqlite://{}", dir.join("sextant.db").display());
        ServerProcess::start_on(dir, &db, args, env)
    }

    /// Starts `sextant server` on the store `db`, with its data directory in `dir`.
    pub fn start_on(
        dir: &Path,
        db: &str,
        args: &[&str],
        env: &[(String, String)],
    ) -> anyhow::Result<ServerProcess> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sextant"))
            .args(["server", "--listen", "127.0.0.1:0"])
            .arg("--db")
            .arg(db)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(args)
            .env("SEXTANT_LOG", "warn")
            .env_remove("SEXTANT_TOKEN_FILE")
            .env_remove("SEXTANT_ARTIFACTS")
            .envs(env.iter().map(|(key, value)| (key, value)))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawn sextant server")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = lines.next().transpose()?.unwrap_or_default();
        let Some(address) = first.strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("sextant server printed {first:?}, not its address");
        };
        let address = address.trim().parse()?;
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(ServerProcess { child, address })
    }

    /// The HTTP API's URL of `path` (under `/api/v1`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/api/v1{path}", self.address)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
