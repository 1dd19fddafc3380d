//! The web UI in a real browser: Debian's chromium, driven through chromedriver (WebDriver) by
//! fantoccini, against a real server on loopback with a real SQLite store and trials as real
//! processes (`python3`). Each page is loaded and must log no console error (the browser's own
//! log: script errors, failed requests and Content-Security-Policy refusals alike); each plot
//! must draw its known number of points on a non-empty canvas. Screenshots of every page go to
//! `target/ui-screenshots/`.
//!
//! Without `/usr/bin/chromedriver` the browser tests say so and pass, except under CI
//! (`CI=true`), where they fail: `.ci/run` installs `chromium` and `chromium-driver`. The
//! endpoints the UI reads besides the resources' own (the dry run, importance, a run's graph,
//! a trial's runs) are checked over HTTP alone first.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use sextant_server::{Server, ServerConfig};
use sextant_store::{NewTrial, Store, TrialConditionUpdate};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// One browser at a time: the machine has two cores.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Branin, reporting `loss` three times (three times, twice, then once its value, so the
/// objective, the minimum, is Branin) and `size` once.
const BRANIN_STEPS: &str = r#"
import math, os, sys, time
args = dict(a.lstrip("-").split("=", 1) for a in sys.argv[1:])
time.sleep(float(os.environ.get("SLEEP", "0")))
x1, x2 = float(args["x1"]), float(args["x2"])
b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
loss = (x2 - b * x1 ** 2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10
for factor in (3, 2, 1):
    print("loss=%r" % (loss * factor), flush=True)
print("size=%r" % (x1 + x2))
"#;

/// Prints its arguments (the payloads, into the output log) and a loss.
const ECHO: &str = r#"
import sys
print("args:", *sys.argv[1:])
print("loss=%r" % float(len("".join(sys.argv))))
"#;

/// Strings that would run script if they reached the page as markup.
const SCRIPT_PAYLOAD: &str = "<script>window.__xss=1</script>";
const IMG_PAYLOAD: &str = "\"><img src=x onerror=\"window.__xss=2\">";

/// A server on loopback with its own store and data directory.
struct TestServer {
    /// `http://127.0.0.1:PORT`.
    url: String,
    http: reqwest::Client,
    store: Store,
    dir: tempfile::TempDir,
    _server: Server,
}

/// A server and a browser.
struct Env {
    server: TestServer,
    browser: Client,
    driver_url: String,
    driver: Child,
}

impl TestServer {
    async fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!(
            "sqlite://{}",
            dir.path().join("sextant.db").display()
        ))
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let config = ServerConfig {
            data_dir: dir.path().join("data"),
            max_parallel_trials: 8,
            token: None,
            max_body_bytes: 1024 * 1024,
            url: Some(url.clone()),
            artifacts: None,
        };
        let server = Server::start(store.clone(), config).await.unwrap();
        tokio::spawn(axum::serve(listener, server.router()).into_future());
        std::fs::write(dir.path().join("branin.py"), BRANIN_STEPS).unwrap();
        std::fs::write(dir.path().join("echo.py"), ECHO).unwrap();
        TestServer {
            url,
            http: reqwest::Client::new(),
            store,
            dir,
            _server: server,
        }
    }

    async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn wait_for_experiment(&self, name: &str, condition: &str) -> Value {
        for _ in 0..1200 {
            let (_, experiment) = self
                .api(reqwest::Method::GET, &format!("/experiments/{name}"), None)
                .await;
            let latest = experiment["status"]["conditions"]
                .as_array()
                .and_then(|conditions| conditions.iter().rev().find(|c| c["status"] == "True"))
                .and_then(|c| c["type"].as_str())
                .map(str::to_string);
            if latest.as_deref() == Some(condition) {
                return experiment;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("experiment {name} never became {condition}");
    }

    async fn wait_for_run(&self, id: &str, phase: &str) -> Value {
        for _ in 0..600 {
            let (_, run) = self
                .api(reqwest::Method::GET, &format!("/runs/{id}"), None)
                .await;
            if run["phase"] == phase {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("run {id} never became {phase}");
    }
}

impl Env {
    /// A server and a browser, or `None` (outside CI) when there is no chromedriver.
    async fn start() -> Option<Env> {
        if !Path::new(CHROMEDRIVER).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{CHROMEDRIVER} is missing: the browser tests need Debian's chromium and \
                 chromium-driver (`apt-get install chromium chromium-driver`; .ci/run does it)"
            );
            eprintln!(
                "skipped: {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)"
            );
            return None;
        }
        let server = TestServer::start().await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver_url = format!("http://127.0.0.1:{port}");
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1400,1000", "--force-prefers-reduced-motion"],
            },
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let mut browser = None;
        for _ in 0..100 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&driver_url)
                .await
            {
                Ok(client) => {
                    browser = Some(client);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        Some(Env {
            server,
            browser: browser.expect("chromedriver answers within 10 s"),
            driver_url,
            driver,
        })
    }

    /// Loads `path` as a person would (a fresh page load), and waits for its heading.
    async fn visit(&self, path: &str) {
        self.browser
            .goto(&format!("{}{path}", self.server.url))
            .await
            .unwrap();
        self.wait_until(
            "document.querySelector('main h1') && !document.querySelector('main[aria-busy]')",
        )
        .await;
    }

    /// Waits until the expression is true in the page (10 s at most).
    async fn wait_until(&self, expression: &str) {
        let started = Instant::now();
        loop {
            let value = self
                .browser
                .execute(
                    &format!("try {{ return Boolean({expression}); }} catch {{ return false; }}"),
                    vec![],
                )
                .await
                .unwrap();
            if value == Value::Bool(true) {
                return;
            }
            if started.elapsed() > Duration::from_secs(20) {
                let shown = self.eval("document.querySelector('main').innerText").await;
                panic!(
                    "never true in {}: {expression}\nconsole: {:?}\npage: {}",
                    self.browser.current_url().await.unwrap(),
                    self.console().await,
                    shown.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn eval(&self, expression: &str) -> Value {
        self.browser
            .execute(&format!("return ({expression});"), vec![])
            .await
            .unwrap()
    }

    /// The browser's console messages since the last call, as (level, text).
    async fn console(&self) -> Vec<(String, String)> {
        let session = self.browser.session_id().await.unwrap().unwrap();
        let response: Value = self
            .server
            .http
            .post(format!("{}/session/{session}/se/log", self.driver_url))
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        response["value"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|entry| {
                        (
                            entry["level"].as_str().unwrap_or_default().to_string(),
                            entry["message"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Makes the page see `prefers-color-scheme: dark` (through chromedriver's DevTools
    /// passthrough).
    async fn prefer_dark(&self) {
        let session = self.browser.session_id().await.unwrap().unwrap();
        let response = self
            .server
            .http
            .post(format!(
                "{}/session/{session}/goog/cdp/execute",
                self.driver_url
            ))
            .json(&json!({
                "cmd": "Emulation.setEmulatedMedia",
                "params": {"features": [{"name": "prefers-color-scheme", "value": "dark"}]},
            }))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{:?}",
            response.text().await
        );
    }

    /// Fails on any console error or warning since the last check.
    async fn assert_clean_console(&self, page: &str) {
        self.assert_clean_console_but(page, None).await;
    }

    /// Fails on any console error or warning since the last check but those that hold
    /// `expected` (the browser logs each refused request, such as an expected 422).
    async fn assert_clean_console_but(&self, page: &str, expected: Option<&str>) {
        let problems: Vec<_> = self
            .console()
            .await
            .into_iter()
            .filter(|(level, _)| level == "SEVERE" || level == "WARNING")
            .filter(|(_, text)| expected.is_none_or(|expected| !text.contains(expected)))
            .collect();
        assert!(problems.is_empty(), "console of {page}: {problems:?}");
    }

    async fn screenshot(&self, name: &str) {
        // CARGO_TARGET_TMPDIR is `<target>/tmp`; the screenshots go beside it.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .map(|target| target.join("ui-screenshots"))
            .unwrap_or_else(|| PathBuf::from("target/ui-screenshots"));
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.browser.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// How many pixels of the canvases under `selector` are drawn on.
    async fn painted(&self, selector: &str) -> u64 {
        let script = format!(
            "let count = 0;
             for (const canvas of document.querySelectorAll('{selector} canvas')) {{
               const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
               for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) count++;
             }}
             return count;"
        );
        self.browser
            .execute(&script, vec![])
            .await
            .unwrap()
            .as_u64()
            .unwrap()
    }

    async fn click(&self, selector: &str) {
        self.browser
            .find(Locator::Css(selector))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    async fn text(&self, selector: &str) -> String {
        self.browser
            .find(Locator::Css(selector))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The payloads are on the page as text, and none of them ran or made an element.
    async fn assert_inert(&self, page: &str, expected_text: &[&str]) {
        let ran = self.eval("window.__xss === undefined && document.querySelectorAll('img').length === 0 && document.querySelectorAll('script').length === 1").await;
        assert_eq!(
            ran,
            Value::Bool(true),
            "a payload ran or made an element on {page}"
        );
        let text = self.eval("document.body.innerText").await;
        for expected in expected_text {
            assert!(
                text.as_str().unwrap().contains(expected),
                "{page} does not show {expected:?} as text"
            );
        }
    }

    async fn close(mut self) {
        self.browser.close().await.unwrap();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn branin(name: &str, script: &Path, max: u32, parallel: u32, sleep: f64) -> Value {
    json!({
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss", "additionalMetricNames": ["size"]},
            "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "3"}]},
            "parallelTrialCount": parallel,
            "maxTrialCount": max,
            "parameters": [
                {"name": "x1", "parameterType": "double", "feasibleSpace": {"min": "-5", "max": "10"}},
                {"name": "x2", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "15"}},
            ],
            "trialTemplate": {
                "trialParameters": [{"name": "x1", "reference": "x1"}, {"name": "x2", "reference": "x2"}],
                "trialSpec": {
                    "apiVersion": "sextant.dev/v1beta1",
                    "kind": "Process",
                    "spec": {
                        "command": ["python3", script.display().to_string(), "--x1=${trialParameters.x1}", "--x2=${trialParameters.x2}"],
                        "env": [{"name": "SLEEP", "value": sleep.to_string()}],
                    },
                },
            },
        },
    })
}

/// A pipeline whose `train` step fails (after one retry) with `boom` on its standard error,
/// carrying the payloads in a parameter, an output and a log.
fn failing_pipeline() -> Value {
    json!({
        "apiVersion": "sextant.dev/v1beta1",
        "kind": "Pipeline",
        "metadata": {"name": "fails"},
        "spec": {
            "params": [{"name": "note"}],
            "steps": [
                {"name": "prepare", "command": ["sh", "-c", "printf '%s' \"$NOTE\" > note.txt; echo \"$NOTE\""],
                 "env": {"NOTE": "{{params.note}}"},
                 "outputs": {"params": [{"name": "note", "path": "note.txt"}],
                             "artifacts": [{"name": "notefile", "path": "note.txt"}]}},
                {"name": "train", "command": ["sh", "-c", "echo training \"$NOTE\"; echo boom >&2; exit 3"],
                 "env": {"NOTE": "{{steps.prepare.outputs.params.note}}"},
                 "retry": {"limit": 1, "backoffSeconds": 0}},
                {"name": "report", "dependsOn": ["train"], "command": ["echo", "done"]},
            ],
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_renders_acts_and_escapes_in_a_real_browser() {
    let _one = ONE_BROWSER.lock().await;
    let Some(env) = Env::start().await else {
        return;
    };
    let branin_script = env.server.dir.path().join("branin.py");
    let echo_script = env.server.dir.path().join("echo.py");
    use reqwest::Method;

    // A small known experiment: 6 trials, each reporting loss 3 times.
    let (status, body) = env
        .server
        .api(
            Method::POST,
            "/experiments",
            Some(branin("branin-ui", &branin_script, 6, 3, 0.0)),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // Two objectives.
    let mut pareto = branin("pareto-ui", &branin_script, 6, 3, 0.0);
    pareto["spec"]["objective"] = json!({"objectives": [
        {"metricName": "loss", "type": "minimize"}, {"metricName": "size", "type": "maximize"}]});
    let (status, body) = env
        .server
        .api(Method::POST, "/experiments", Some(pareto))
        .await;
    assert_eq!(status, 201, "{body}");
    // Payloads in a parameter's name and in a categorical parameter's values.
    let xss = json!({
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "xss-ui"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "grid"},
            "parallelTrialCount": 2,
            "maxTrialCount": 2,
            "parameters": [
                {"name": SCRIPT_PAYLOAD, "parameterType": "categorical", "feasibleSpace": {"list": [IMG_PAYLOAD, SCRIPT_PAYLOAD]}},
            ],
            "trialTemplate": {
                "trialParameters": [{"name": "p", "reference": SCRIPT_PAYLOAD}],
                "trialSpec": {"apiVersion": "sextant.dev/v1beta1", "kind": "Process",
                    "spec": {"command": ["python3", echo_script.display().to_string(), "${trialParameters.p}"]}},
            },
        },
    });
    let (status, body) = env
        .server
        .api(Method::POST, "/experiments", Some(xss))
        .await;
    assert_eq!(status, 201, "{body}");
    // A failing pipeline run, then the same again: its first step comes from the cache.
    let payloads = format!("{SCRIPT_PAYLOAD} {IMG_PAYLOAD}");
    let mut run_ids = Vec::new();
    for attempt in 0..2 {
        let (status, body) = env.server
            .api(Method::POST, "/runs", Some(json!({"pipeline": failing_pipeline(), "params": {"note": payloads}, "runId": format!("fails-{attempt}")})))
            .await;
        assert_eq!(status, 201, "{body}");
        run_ids.push(body["runId"].as_str().unwrap().to_string());
        env.server.wait_for_run(&run_ids[attempt], "Failed").await;
    }
    // A step named with a payload never gets that far: step names are refused unless plain.
    let mut named = failing_pipeline();
    named["spec"]["steps"][0]["name"] = json!(SCRIPT_PAYLOAD);
    let (status, body) = env
        .server
        .api(
            Method::POST,
            "/runs",
            Some(json!({"pipeline": named, "params": {"note": "x"}})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = env
        .server
        .api(
            Method::POST,
            "/recurringruns",
            Some(json!({
                "name": "nightly", "pipeline": failing_pipeline(), "params": {"note": "n"},
                "schedule": {"cron": "0 3 * * *"}, "enabled": false,
            })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    env.server
        .wait_for_experiment("branin-ui", "Succeeded")
        .await;
    env.server
        .wait_for_experiment("pareto-ui", "Succeeded")
        .await;
    env.server.wait_for_experiment("xss-ui", "Succeeded").await;

    // The experiments list.
    env.visit("/experiments").await;
    env.wait_until("document.querySelectorAll('#experiments tbody tr').length === 3")
        .await;
    assert_eq!(
        env.text("#experiments tr[data-name='branin-ui'] td:nth-of-type(3)")
            .await,
        "6 / 6"
    );
    env.assert_clean_console("/experiments").await;
    env.screenshot("experiments").await;
    // Filtered by condition on the server.
    let select = env
        .browser
        .find(Locator::Css("select[name=condition]"))
        .await
        .unwrap();
    select.select_by_value("Failed").await.unwrap();
    env.wait_until("document.querySelectorAll('#experiments tbody tr').length === 0 && location.search === '?condition=Failed'").await;

    // The experiment page and its plots, with the counts of a known experiment.
    env.visit("/experiments/branin-ui").await;
    env.wait_until("document.querySelector('#chart-intermediate[data-points]') && document.querySelector('#chart-importance[data-points]')").await;
    for (chart, points) in [
        ("history", 6),
        ("parallel", 6),
        ("slice", 6),
        ("contour", 6),
        ("importance", 2),
        ("intermediate", 18),
    ] {
        let drawn = env
            .eval(&format!(
                "document.querySelector('#chart-{chart}').dataset.points"
            ))
            .await;
        assert_eq!(drawn, json!(points.to_string()), "points of {chart}");
        assert!(
            env.painted(&format!("#chart-{chart}")).await > 500,
            "{chart} is blank"
        );
    }
    assert_eq!(
        env.eval("document.querySelector('#chart-intermediate').dataset.series")
            .await,
        json!("6")
    );
    assert_eq!(
        env.eval("document.querySelectorAll('#trial-table tbody tr').length")
            .await,
        json!(6)
    );
    // The table sorts on the server: best objective first.
    let order = env
        .browser
        .find(Locator::Css("#trial-order"))
        .await
        .unwrap();
    order.select_by_value("objective").await.unwrap();
    let (_, best_first) = env
        .server
        .api(
            Method::GET,
            "/experiments/branin-ui/trials?orderBy=objective&pageSize=1",
            None,
        )
        .await;
    let best_name = best_first["trials"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    env.wait_until(&format!(
        "document.querySelector('#trial-table tbody th').textContent === '{best_name}'"
    ))
    .await;
    // A column's header orders the table by it (x1 is the fourth column); a second click
    // reverses; the Objective header goes back to best first.
    let x1_header = "#trial-table thead button[data-order='parameter:x1']";
    let x1_column = "[...document.querySelectorAll('#trial-table tbody tr')].map((row) => Number(row.children[3].textContent))";
    env.click(x1_header).await;
    env.wait_until(&format!(
        "(() => {{ const cells = {x1_column}; return document.querySelector(\"#trial-table thead th[aria-sort='ascending'] button[data-order='parameter:x1']\") && cells.length === 6 && cells.every((value, index) => index === 0 || cells[index - 1] <= value); }})()"
    ))
    .await;
    env.click(x1_header).await;
    env.wait_until(&format!(
        "(() => {{ const cells = {x1_column}; return document.querySelector(\"#trial-table thead th[aria-sort='descending'] button[data-order='parameter:x1']\") && cells.length === 6 && cells[0] > cells[5] && cells.every((value, index) => index === 0 || cells[index - 1] >= value); }})()"
    ))
    .await;
    env.click("#trial-table thead button[data-order='objective']")
        .await;
    env.wait_until(&format!(
        "document.querySelector('#trial-table tbody th').textContent === '{best_name}'"
    ))
    .await;
    env.assert_clean_console("/experiments/branin-ui").await;
    env.screenshot("experiment").await;
    // The trials as CSV: the file the page hands the browser, caught as it is made.
    let csv = env
        .browser
        .execute_async(
            "const done = arguments[0];
             const made = URL.createObjectURL;
             URL.createObjectURL = (blob) => { blob.text().then(done); return made(blob); };
             document.querySelector('#download-csv').click();",
            vec![],
        )
        .await
        .unwrap();
    let csv = csv.as_str().unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 7, "{csv}");
    assert!(
        lines[0].starts_with("name,condition,objectiveValue,x1,x2,loss,size,"),
        "{csv}"
    );
    env.eval("document.querySelector('#plots').scrollIntoView() || true")
        .await;
    env.screenshot("experiment-plots").await;
    env.eval("document.querySelector('#chart-contour').scrollIntoView() || true")
        .await;
    env.screenshot("experiment-plots-2").await;

    // A trial, reached by a link; the back button returns.
    env.click("#trial-table tbody th a").await;
    env.wait_until(&format!("location.pathname === '/experiments/branin-ui/trials/{best_name}' && document.querySelector('main h1').textContent === '{best_name}'")).await;
    env.wait_until("document.querySelector('#log').textContent.includes('loss=') && document.querySelector('#chart-metrics[data-points]')").await;
    assert_eq!(
        env.eval("document.querySelector('#chart-metrics').dataset.points")
            .await,
        json!("4")
    );
    env.assert_clean_console("trial page").await;
    env.screenshot("trial").await;
    env.browser.back().await.unwrap();
    env.wait_until("location.pathname === '/experiments/branin-ui' && document.querySelector('main h1').textContent === 'branin-ui'").await;

    // Several objectives: the Pareto front.
    env.visit("/experiments/pareto-ui").await;
    env.wait_until("document.querySelector('#chart-pareto[data-points]')")
        .await;
    assert_eq!(
        env.eval("document.querySelector('#chart-pareto').dataset.points")
            .await,
        json!("6")
    );
    assert!(
        env.eval("Number(document.querySelector('#chart-pareto').dataset.front)")
            .await
            .as_u64()
            .unwrap()
            >= 1
    );
    assert!(env.painted("#chart-pareto").await > 500);
    env.assert_clean_console("/experiments/pareto-ui").await;
    env.screenshot("experiment-pareto").await;

    // New experiment: an invalid spec is refused field by field and nothing is created.
    env.visit("/submit").await;
    let set_spec = |text: String| {
        let browser = env.browser.clone();
        async move {
            browser
                .execute(
                    "document.querySelector('textarea[name=spec]').value = arguments[0];",
                    vec![json!(text)],
                )
                .await
                .unwrap();
        }
    };
    let mut invalid = branin("bad-ui", &branin_script, 0, 3, 0.0);
    invalid["spec"]["maxTrialCount"] = json!(-1);
    invalid["spec"]["parameters"][0]["feasibleSpace"] = json!({"min": "10", "max": "-5"});
    set_spec(serde_yaml::to_string(&invalid).unwrap()).await;
    env.click("#check").await;
    env.wait_until("document.querySelectorAll('#result code.path').length >= 2")
        .await;
    let paths = env
        .eval("[...document.querySelectorAll('#result code.path')].map((e) => e.textContent)")
        .await;
    let paths: Vec<&str> = paths
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(paths.contains(&"spec.maxTrialCount"), "{paths:?}");
    assert!(
        paths
            .iter()
            .any(|path| path.starts_with("spec.parameters[0]")),
        "{paths:?}"
    );
    env.screenshot("new-experiment-invalid").await;
    env.click("#create").await;
    env.wait_until("document.querySelector('#result .error')")
        .await;
    assert_eq!(
        env.server
            .api(Method::GET, "/experiments/bad-ui", None)
            .await
            .0,
        404
    );
    // A name with a payload is refused, and the refusal shows it as text.
    let mut named = branin("x", &branin_script, 2, 1, 0.0);
    named["metadata"]["name"] = json!(SCRIPT_PAYLOAD);
    set_spec(serde_yaml::to_string(&named).unwrap()).await;
    env.click("#check").await;
    env.wait_until("[...document.querySelectorAll('#result code.path')].some((e) => e.textContent === 'metadata.name')").await;
    env.assert_inert("/submit", &[SCRIPT_PAYLOAD]).await;
    // A valid one is checked, then created.
    set_spec(serde_yaml::to_string(&branin("created-ui", &branin_script, 2, 2, 0.0)).unwrap())
        .await;
    env.click("#check").await;
    env.wait_until("document.querySelector('#result .ok')")
        .await;
    assert_eq!(
        env.server
            .api(Method::GET, "/experiments/created-ui", None)
            .await
            .0,
        404
    );
    env.click("#create").await;
    env.wait_until("location.pathname === '/experiments/created-ui' && document.querySelector('main h1').textContent === 'created-ui'").await;
    // The refusals above, and nothing else.
    env.assert_clean_console_but("/submit", Some("status of 422 (Unprocessable Entity)"))
        .await;

    // Stop stops a running experiment.
    let (status, body) = env
        .server
        .api(
            Method::POST,
            "/experiments",
            Some(branin("slow-ui", &branin_script, 4, 2, 60.0)),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    env.server.wait_for_experiment("slow-ui", "Running").await;
    env.visit("/experiments/slow-ui").await;
    env.wait_until("!document.querySelector('#stop').disabled")
        .await;
    env.click("#stop").await;
    env.wait_until("document.querySelector('#state').textContent === 'Stopped' && document.querySelector('#stop').disabled").await;
    let (_, stopped) = env
        .server
        .api(Method::GET, "/experiments/slow-ui", None)
        .await;
    assert!(
        stopped["metadata"]["annotations"]["sextant.dev/stopped"].is_string(),
        "{stopped}"
    );
    assert_eq!(stopped["status"]["trialsSucceeded"], 0);
    env.assert_clean_console("/experiments/slow-ui").await;
    env.screenshot("experiment-stopped").await;
    // Resumed with a new budget, then deleted (the button asks twice).
    env.browser
        .execute("document.querySelector('#budget').value = '5';", vec![])
        .await
        .unwrap();
    env.click("#resume").await;
    env.wait_until("document.querySelector('#state').textContent !== 'Stopped' && !document.querySelector('#stop').disabled")
        .await;
    let (_, resumed) = env
        .server
        .api(Method::GET, "/experiments/slow-ui", None)
        .await;
    assert_eq!(resumed["spec"]["maxTrialCount"], 5);
    env.click("#delete").await;
    env.wait_until("document.querySelector('#delete').textContent === 'Really delete?'")
        .await;
    env.click("#delete").await;
    env.wait_until("location.pathname === '/experiments' && document.querySelector('#experiments tbody tr') && !document.querySelector(\"#experiments tr[data-name='slow-ui']\")")
        .await;
    assert_eq!(
        env.server
            .api(Method::GET, "/experiments/slow-ui", None)
            .await
            .0,
        404
    );

    // The runs, and two compared.
    env.visit("/runs").await;
    env.wait_until("document.querySelectorAll('#runs tbody tr').length === 2")
        .await;
    env.screenshot("runs").await;
    for checkbox in env
        .browser
        .find_all(Locator::Css("#runs tbody input[type=checkbox]"))
        .await
        .unwrap()
    {
        checkbox.click().await.unwrap();
    }
    env.click("#compare").await;
    env.wait_until("location.pathname === '/compare' && document.querySelector('#compare-table')")
        .await;
    env.assert_inert("/compare", &[SCRIPT_PAYLOAD, IMG_PAYLOAD])
        .await;
    env.assert_clean_console("/runs and /compare").await;
    env.screenshot("compare").await;

    // A run's DAG: the failed step in its failed state, with its log; the cached step marked.
    env.visit(&format!("/runs/{}", run_ids[1])).await;
    env.wait_until("document.querySelectorAll('#dag g.node').length === 3")
        .await;
    assert_eq!(
        env.eval("document.querySelector('#dag g[data-step=train]').dataset.phase")
            .await,
        json!("Failed")
    );
    assert!(
        env.eval(
            "document.querySelector('#dag g[data-step=prepare]').classList.contains('cached')"
        )
        .await
        .as_bool()
        .unwrap()
    );
    assert!(
        env.text("#dag g[data-step=train] text.detail")
            .await
            .contains("↻ 2")
    );
    env.click("#dag g[data-step=train]").await;
    env.wait_until("document.querySelector('#step pre.stderr') && document.querySelector('#step pre.stderr').textContent.includes('boom')").await;
    assert!(
        env.eval("location.search")
            .await
            .as_str()
            .unwrap()
            .contains("step=train")
    );
    env.assert_inert("/runs/ID", &[SCRIPT_PAYLOAD]).await;
    env.assert_clean_console("run page").await;
    env.screenshot("run").await;
    // Reloading the shared address shows the same step.
    env.browser.refresh().await.unwrap();
    env.wait_until("document.querySelector('#step pre.stderr') && document.querySelector('#step pre.stderr').textContent.includes('boom')").await;
    env.visit(&format!("/runs/{}?step=prepare", run_ids[0]))
        .await;
    env.wait_until("document.querySelector('#step dl.outputs')")
        .await;
    env.assert_inert("prepare step", &[SCRIPT_PAYLOAD, IMG_PAYLOAD])
        .await;
    // Its artifact downloads with the bytes the step wrote.
    let artifact = env
        .browser
        .execute_async(
            "const done = arguments[0];
             const made = URL.createObjectURL;
             URL.createObjectURL = (blob) => { blob.text().then(done); return made(blob); };
             [...document.querySelectorAll('#step button')].find((b) => b.textContent === 'Download notefile').click();",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(artifact, json!(payloads));

    // Recurring runs.
    env.visit("/recurring").await;
    env.wait_until("document.querySelector('#recurring code') && document.querySelector('#recurring code').textContent === '0 3 * * *'").await;
    env.assert_clean_console("/recurring").await;
    env.screenshot("recurring").await;

    // The list is live: an experiment submitted elsewhere appears, and its progress moves.
    env.visit("/experiments").await;
    env.wait_until("document.querySelectorAll('#experiments tbody tr').length === 4")
        .await;
    let (status, body) = env
        .server
        .api(
            Method::POST,
            "/experiments",
            Some(branin("live-ui", &branin_script, 2, 2, 0.0)),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    env.wait_until("document.querySelector(\"#experiments tr[data-name='live-ui'] td:nth-of-type(3)\").textContent.trim() === '2 / 2'")
        .await;
    env.assert_clean_console("/experiments, live").await;

    // The payload experiment and its trial render as text and run nothing.
    env.visit("/experiments/xss-ui").await;
    env.wait_until("document.querySelector('#chart-parallel[data-points]')")
        .await;
    env.assert_inert("/experiments/xss-ui", &[SCRIPT_PAYLOAD, IMG_PAYLOAD])
        .await;
    env.screenshot("experiment-xss").await;
    env.click("#trial-table tbody th a").await;
    env.wait_until("location.pathname.includes('/trials/') && document.querySelector('#log').textContent.includes('args:')").await;
    env.assert_inert("xss trial", &[SCRIPT_PAYLOAD]).await;
    env.assert_clean_console("xss pages").await;
    env.screenshot("trial-xss").await;

    // The dark theme follows the system's preference.
    env.prefer_dark().await;
    env.visit("/experiments/branin-ui").await;
    env.wait_until("document.querySelector('#chart-intermediate[data-points]')")
        .await;
    assert_eq!(
        env.eval("getComputedStyle(document.body).backgroundColor")
            .await,
        json!("rgb(13, 17, 23)")
    );
    env.assert_clean_console("dark experiment page").await;
    env.screenshot("experiment-dark").await;
    env.visit(&format!("/runs/{}?step=train", run_ids[1])).await;
    env.wait_until("document.querySelector('#step pre.stderr')")
        .await;
    env.screenshot("run-dark").await;

    // The API's paths are never the page; the page's are, and carry the policy.
    let page = env
        .server
        .http
        .get(format!("{}/experiments/branin-ui/trials/x", env.server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let missing = env
        .server
        .http
        .get(format!("{}/api/v1/nothing", env.server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(!missing.headers().contains_key("content-security-policy"));
    let script = env
        .server
        .http
        .get(format!("{}/assets/app.js", env.server.url))
        .send()
        .await
        .unwrap();
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    let etag = script.headers()["etag"].clone();
    let again = env
        .server
        .http
        .get(format!("{}/assets/app.js", env.server.url))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);

    env.close().await;
}

/// Prints (does not assert) what the experiment page costs with 10,000 trials: its first
/// paints, the longest task while the trial table scrolls and pages, and the API calls it made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test: run it with --ignored --nocapture"]
async fn ten_thousand_trials_measured() {
    let _one = ONE_BROWSER.lock().await;
    let Some(env) = Env::start().await else {
        return;
    };
    const TRIALS: usize = 10_000;
    let study = json!({
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": "big-ui"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "maxTrialCount": TRIALS,
            "parameters": [
                {"name": "x1", "parameterType": "double", "feasibleSpace": {"min": "-5", "max": "10"}},
                {"name": "x2", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "15"}},
                {"name": "optimizer", "parameterType": "categorical", "feasibleSpace": {"list": ["sgd", "adam"]}},
            ],
        },
    });
    let (status, body) = env
        .server
        .api(reqwest::Method::POST, "/studies", Some(study))
        .await;
    assert_eq!(status, 201, "{body}");
    let filling = Instant::now();
    for index in 0..TRIALS {
        let x1 = -5.0 + 15.0 * ((index * 7919) % TRIALS) as f64 / TRIALS as f64;
        let x2 = 15.0 * ((index * 104_729) % TRIALS) as f64 / TRIALS as f64;
        let loss = (x2 - 0.129 * x1 * x1 + 1.59 * x1 - 6.0).powi(2) + 9.6 * x1.cos() + 10.0;
        let name = format!("big-ui-{index:05}");
        env.server
            .store
            .insert_trial(&NewTrial {
                name: name.clone(),
                experiment_name: "big-ui".into(),
                spec: "{}".into(),
                assignments: json!([
                    {"name": "x1", "value": x1.to_string()},
                    {"name": "x2", "value": x2.to_string()},
                    {"name": "optimizer", "value": if index % 2 == 0 { "sgd" } else { "adam" }},
                ])
                .to_string(),
                labels: "{}".into(),
            })
            .await
            .unwrap();
        let value = loss.to_string();
        env.server.store
            .update_trial_observation(
                &name,
                Some(&json!({"metrics": [{"name": "loss", "min": value, "max": value, "latest": value}]}).to_string()),
            )
            .await
            .unwrap();
        env.server
            .store
            .update_trial_condition(
                &name,
                &TrialConditionUpdate {
                    condition_type: "Succeeded".into(),
                    reason: "TrialSucceeded".into(),
                    message: String::new(),
                    start_time: None,
                    completion_time: Some(chrono::Utc::now()),
                },
            )
            .await
            .unwrap();
    }
    eprintln!(
        "filled {TRIALS} trials in {:.1} s",
        filling.elapsed().as_secs_f64()
    );

    env.browser
        .goto(&format!("{}/experiments/big-ui", env.server.url))
        .await
        .unwrap();
    env.wait_until("document.querySelector('#chart-history[data-points]')")
        .await;
    let started = Instant::now();
    while env
        .eval("document.querySelector('#chart-history').dataset.points")
        .await
        != json!(TRIALS.to_string())
    {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the plots never drew every trial"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    env.wait_until("document.querySelector('#chart-intermediate[data-points]') && [...document.querySelectorAll('.chart')].every((chart) => chart.dataset.rendered === 'true')").await;
    let paints = env
        .eval(
            "{
            fcp: (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime,
            summary: (performance.getEntriesByName('sextant:summary')[0] || {}).startTime,
            plotsDrawn: performance.now(),
        }",
        )
        .await;
    // The longest task while the table scrolls and pages, observed from here on.
    let longest = env
        .browser
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const durations = [];
             const loading = [];
             const scrollStart = performance.now();
             new PerformanceObserver((list) => {
               for (const entry of list.getEntries()) (entry.startTime < scrollStart ? loading : durations).push(entry.duration);
             }).observe({ type: 'longtask', buffered: true });
             const scroller = document.querySelector('.table-scroll');
             const label = document.querySelector('#trial-page');
             let step = 0;
             let pages = 0;
             const tick = () => {
               scroller.scrollTop = (step % 20) * 60;
               step += 1;
               if (step % 20 !== 0) { requestAnimationFrame(tick); return; }
               if (pages === 6) { setTimeout(() => done({ longest: Math.max(0, ...durations), longTasks: durations.length, loadingLongest: Math.max(0, ...loading), loadingTasks: loading.length }), 300); return; }
               pages += 1;
               const before = label.textContent;
               document.querySelector('#trial-next').click();
               const wait = () => (label.textContent === before ? setTimeout(wait, 20) : requestAnimationFrame(tick));
               wait();
             };
             requestAnimationFrame(tick);",
            vec![],
        )
        .await
        .unwrap();
    let calls = env
        .eval("performance.getEntriesByType('resource').filter((e) => e.name.includes('/api/v1/'))
              .map((e) => ({ call: e.name.replace(location.origin, '').replace(/trials\\/big-ui-[0-9]+\\//, 'trials/NAME/'), bytes: e.encodedBodySize, ms: Math.round(e.duration) }))")
        .await;
    let mut grouped: std::collections::BTreeMap<String, (u64, u64, u64)> = Default::default();
    for call in calls.as_array().unwrap() {
        let entry = grouped
            .entry(call["call"].as_str().unwrap().to_string())
            .or_default();
        entry.0 += 1;
        entry.1 += call["bytes"].as_u64().unwrap_or(0);
        entry.2 = entry.2.max(call["ms"].as_u64().unwrap_or(0));
    }
    println!("experiment page with {TRIALS} trials:");
    println!(
        "  first contentful paint: {:.0} ms",
        paints["fcp"].as_f64().unwrap_or(f64::NAN)
    );
    println!(
        "  summary drawn (first meaningful paint): {:.0} ms",
        paints["summary"].as_f64().unwrap_or(f64::NAN)
    );
    println!(
        "  every plot drawn: {:.0} ms",
        paints["plotsDrawn"].as_f64().unwrap_or(f64::NAN)
    );
    println!(
        "  trial table scrolled over 140 frames and paged 6 times: longest task {} ms ({} tasks over 50 ms)",
        longest["longest"], longest["longTasks"]
    );
    println!(
        "  while loading and drawing: longest task {} ms ({} tasks over 50 ms)",
        longest["loadingLongest"], longest["loadingTasks"]
    );
    println!("  API calls (count, bytes in all, slowest ms):");
    for (call, (count, bytes, slowest)) in grouped {
        println!("    {count:>4} x {call}: {bytes} bytes, {slowest} ms");
    }
    env.screenshot("experiment-10000-trials").await;
    env.close().await;
}

#[tokio::test]
async fn the_endpoints_the_ui_reads_answer_as_documented() {
    use reqwest::Method;
    let server = TestServer::start().await;
    let script = server.dir.path().join("branin.py");

    // A dry run checks without creating: each problem by field path, or the defaulted spec.
    let mut invalid = branin("dry-ui", &script, 3, 1, 0.0);
    invalid["spec"]["maxTrialCount"] = json!(-1);
    let (status, body) = server
        .api(Method::POST, "/experiments?dryRun=true", Some(invalid))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["fields"][0]["path"], "spec.maxTrialCount");
    let (status, body) = server
        .api(
            Method::POST,
            "/experiments?dryRun=true",
            Some(branin("dry-ui", &script, 3, 1, 0.0)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["spec"]["parallelTrialCount"], 1);
    assert_eq!(
        server.api(Method::GET, "/experiments/dry-ui", None).await.0,
        404
    );
    let (status, _) = server
        .api(
            Method::POST,
            "/experiments",
            Some(branin("dry-ui", &script, 3, 3, 0.0)),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = server
        .api(
            Method::POST,
            "/experiments?dryRun=true",
            Some(branin("dry-ui", &script, 3, 1, 0.0)),
        )
        .await;
    assert_eq!(status, 409, "a dry run says the name is taken: {body}");

    // Importance: a study told a loss that only x moves; y explains nothing.
    let study = json!({
        "apiVersion": "kubeflow.org/v1beta1", "kind": "Experiment", "metadata": {"name": "matters-ui"},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "1"}]},
            "maxTrialCount": 60,
            "parameters": [
                {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}},
                {"name": "y", "parameterType": "categorical", "feasibleSpace": {"list": ["a", "b", "c"]}},
            ],
        },
    });
    assert_eq!(
        server.api(Method::POST, "/studies", Some(study)).await.0,
        201
    );
    let (status, body) = server
        .api(Method::GET, "/experiments/matters-ui/importance", None)
        .await;
    assert_eq!(status, 409, "nothing to learn from yet: {body}");
    for _ in 0..60 {
        let (_, trial) = server
            .api(Method::POST, "/studies/matters-ui/ask", Some(json!({})))
            .await;
        let x: f64 = trial["parameterAssignments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|assignment| assignment["name"] == "x")
            .unwrap()["value"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let (status, body) = server
            .api(
                Method::POST,
                "/studies/matters-ui/tell",
                Some(json!({"trial": trial["name"], "values": {"loss": (x * 6.0).sin()}})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, importance) = server
        .api(Method::GET, "/experiments/matters-ui/importance", None)
        .await;
    assert_eq!(status, 200, "{importance}");
    assert_eq!(importance["trialCount"], 60);
    assert_eq!(importance["parameters"][0]["name"], "x");
    assert!(
        importance["parameters"][0]["importance"].as_f64().unwrap() > 0.8,
        "{importance}"
    );
    assert!(
        importance["parameters"][1]["importance"].as_f64().unwrap() < 0.1,
        "{importance}"
    );

    // A run's graph, and a process trial has no runs.
    let (status, body) = server
        .api(Method::POST, "/runs", Some(json!({"pipeline": failing_pipeline(), "params": {"note": "n"}, "runId": "graph-ui"})))
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, graph) = server.api(Method::GET, "/runs/graph-ui/graph", None).await;
    assert_eq!(status, 200, "{graph}");
    assert_eq!(graph["steps"][1]["dependencies"], json!(["prepare"]));
    assert_eq!(graph["steps"][1]["retryLimit"], 1);
    assert_eq!(
        server.api(Method::GET, "/runs/nothing/graph", None).await.0,
        404
    );
    server.wait_for_experiment("dry-ui", "Succeeded").await;
    let (_, trials) = server
        .api(Method::GET, "/experiments/dry-ui/trials", None)
        .await;
    let trial = trials["trials"][0]["name"].as_str().unwrap();
    let (status, runs) = server
        .api(Method::GET, &format!("/trials/{trial}/runs"), None)
        .await;
    assert_eq!((status, runs), (200, json!({"runIds": []})));

    // A pipeline trial's runs are its own: one run each, found by the trial, not by another.
    let mut piped = branin("piped-ui", &script, 2, 2, 0.0);
    let process = piped["spec"]["trialTemplate"]["trialSpec"]["spec"].clone();
    piped["spec"]["trialTemplate"]["trialSpec"] = json!({
        "apiVersion": "sextant.dev/v1beta1",
        "kind": "Pipeline",
        "spec": {"steps": [{"name": "evaluate", "command": process["command"], "env": {"SLEEP": "0"}}]},
    });
    let (status, body) = server.api(Method::POST, "/experiments", Some(piped)).await;
    assert_eq!(status, 201, "{body}");
    server.wait_for_experiment("piped-ui", "Succeeded").await;
    let (_, trials) = server
        .api(Method::GET, "/experiments/piped-ui/trials", None)
        .await;
    let mut seen = Vec::new();
    for trial in trials["trials"].as_array().unwrap() {
        let name = trial["name"].as_str().unwrap();
        let (status, runs) = server
            .api(Method::GET, &format!("/trials/{name}/runs"), None)
            .await;
        assert_eq!(status, 200, "{runs}");
        let ids = runs["runIds"].as_array().unwrap();
        assert_eq!(ids.len(), 1, "trial {name}: {runs}");
        let (status, run) = server
            .api(
                Method::GET,
                &format!("/runs/{}", ids[0].as_str().unwrap()),
                None,
            )
            .await;
        assert_eq!((status, &run["phase"]), (200, &json!("Succeeded")), "{run}");
        seen.push(ids[0].clone());
    }
    assert_eq!(seen.len(), 2);
    assert_ne!(seen[0], seen[1], "each trial has its own run");

    let (_, document) = server.api(Method::GET, "/openapi.json", None).await;
    for path in [
        "/api/v1/experiments/{name}/importance",
        "/api/v1/runs/{id}/graph",
        "/api/v1/trials/{name}/runs",
    ] {
        assert!(
            document["paths"][path].is_object(),
            "{path} is not documented"
        );
    }
    let parameters = document["paths"]["/api/v1/experiments"]["post"]["parameters"].to_string();
    assert!(parameters.contains("dryRun"), "{parameters}");
}
