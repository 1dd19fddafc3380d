//! A client of the HTTP API, for the command line (`sextant submit`, `stop`, `logs`, `get`,
//! `pipeline run` and `schedule` with `--server URL`): each call is one request (a list, one
//! per page), answers are the API's own types, and a refusal comes back as the server's own
//! error body.

use std::time::Duration;

use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sextant_controller::cli::TrialRow;
use sextant_experiment::Experiment;
use sextant_experiment::api::common::{Metric, Observation, ParameterAssignment};

use crate::recurring::{CreateRecurringRun, RecurringRunView};
use crate::runs::{CreateRun, RunView};
use crate::supervisor::{is_finished, is_stopped};
use crate::views::{ErrorBody, TrialView};

/// The most items a list asks for per page (the server's largest page).
const PAGE_SIZE: usize = crate::pagination::MAX_PAGE_SIZE;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached, or the exchange broke off.
    #[error("cannot reach the server at {url}: {source}")]
    Transport {
        /// The request's URL.
        url: String,
        /// What failed.
        #[source]
        source: reqwest::Error,
    },
    /// The server refused the request.
    #[error("the server answered {status}: {}{}", .body.error.message, fields(.body))]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The server's error body.
        body: Box<ErrorBody>,
    },
    /// The server answered with something that is not the API's.
    #[error("the server answered {status} with a body that is not the API's: {text}")]
    Unexpected {
        /// The HTTP status.
        status: u16,
        /// The start of the body.
        text: String,
    },
}

impl ClientError {
    /// Whether the server found the request invalid (a 4xx other than 404, 409 and 401).
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, ClientError::Refused { status, .. } if matches!(status, 400 | 413 | 415 | 422))
    }
}

fn fields(body: &ErrorBody) -> String {
    body.error
        .fields
        .iter()
        .map(|field| format!("\n  {}: {}", field.path, field.rule))
        .collect()
}

/// A server's API.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// The API of the server at `url` (`http://host:port`), sending `token` when given.
    pub fn new(url: &str, token: Option<String>) -> Client {
        Client {
            base: format!("{}/api/v1", url.trim_end_matches('/')),
            token,
            http: reqwest::Client::new(),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> (String, reqwest::RequestBuilder) {
        let url = format!("{}{path}", self.base);
        let request = self.http.request(method, &url);
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        (url, request)
    }

    async fn send(
        &self,
        url: String,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let response = request
            .send()
            .await
            .map_err(|source| ClientError::Transport {
                url: url.clone(),
                source,
            })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|source| ClientError::Transport { url, source })?;
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => Err(ClientError::Refused {
                status,
                body: Box::new(body),
            }),
            Err(_) => Err(ClientError::Unexpected {
                status,
                text: sextant_echo::cut(&text, 200).into_owned(),
            }),
        }
    }

    async fn json<T: DeserializeOwned>(
        &self,
        url: String,
        request: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = self.send(url.clone(), request).await?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|source| ClientError::Transport { url, source })?;
        serde_json::from_str(&text).map_err(|_| ClientError::Unexpected {
            status,
            text: sextant_echo::cut(&text, 200).into_owned(),
        })
    }

    /// Every item of a paged list at `path`, under `key` in each page, following the pages.
    async fn pages<T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
    ) -> Result<Vec<T>, ClientError> {
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let (url, request) = self.request(reqwest::Method::GET, path);
            let mut query = vec![("pageSize", PAGE_SIZE.to_string())];
            query.extend(token.map(|token| ("pageToken", token)));
            let mut page: Value = self.json(url, request.query(&query)).await?;
            let page_items = serde_json::from_value::<Vec<T>>(page[key].take()).map_err(|_| {
                ClientError::Unexpected {
                    status: 200,
                    text: format!("a page of {path} without a list of `{key}`"),
                }
            })?;
            items.extend(page_items);
            match page["nextPageToken"].as_str() {
                Some(next) => token = Some(next.to_string()),
                None => return Ok(items),
            }
        }
    }

    // === experiments and trials ===

    /// Submits an Experiment (YAML or JSON text); the stored Experiment.
    pub async fn submit(&self, spec: String) -> Result<Experiment, ClientError> {
        let (url, request) = self.request(reqwest::Method::POST, "/experiments");
        self.json(
            url,
            request
                .header("content-type", "application/yaml")
                .body(spec),
        )
        .await
    }

    /// Every experiment (and study), oldest first.
    pub async fn experiments(&self) -> Result<Vec<Experiment>, ClientError> {
        self.pages("/experiments", "experiments").await
    }

    /// The Experiment with its status.
    pub async fn experiment(&self, name: &str) -> Result<Experiment, ClientError> {
        let (url, request) = self.request(reqwest::Method::GET, &format!("/experiments/{name}"));
        self.json(url, request).await
    }

    /// The trials of an experiment, in creation order.
    pub async fn trials(&self, name: &str) -> Result<Vec<TrialView>, ClientError> {
        self.pages(&format!("/experiments/{name}/trials"), "trials")
            .await
    }

    /// Stops an experiment; the stopped Experiment.
    pub async fn stop(&self, name: &str) -> Result<Experiment, ClientError> {
        let (url, request) =
            self.request(reqwest::Method::POST, &format!("/experiments/{name}/stop"));
        self.json(url, request).await
    }

    /// Waits until the experiment has finished (by the rule the server resumes by) or has been
    /// stopped, looking every `poll`; the Experiment.
    pub async fn wait(&self, name: &str, poll: Duration) -> Result<Experiment, ClientError> {
        loop {
            let experiment = self.experiment(name).await?;
            if is_finished(&experiment) || is_stopped(&experiment) {
                return Ok(experiment);
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Writes a trial's output to `out` as it arrives: its last `tail` lines, or all of it;
    /// with `follow`, until the trial ends.
    pub async fn logs(
        &self,
        trial: &str,
        tail: Option<usize>,
        follow: bool,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<(), ClientError> {
        let mut query = vec![("follow", follow.to_string())];
        if let Some(tail) = tail {
            query.push(("tail", tail.to_string()));
        }
        let (url, request) = self.request(reqwest::Method::GET, &format!("/trials/{trial}/log"));
        let response = self.send(url.clone(), request.query(&query)).await?;
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|source| ClientError::Transport {
                url: url.clone(),
                source,
            })?;
            // Output is best effort: a closed pipe ends the copy, not the program.
            if out.write_all(&chunk).and_then(|()| out.flush()).is_err() {
                break;
            }
        }
        Ok(())
    }

    // === pipeline runs ===

    /// Starts a pipeline run; the run as recorded when it started.
    pub async fn create_run(&self, run: &CreateRun) -> Result<RunView, ClientError> {
        let (url, request) = self.request(reqwest::Method::POST, "/runs");
        self.json(url, request.json(run)).await
    }

    /// A run with its step states.
    pub async fn run(&self, run_id: &str) -> Result<RunView, ClientError> {
        let (url, request) = self.request(reqwest::Method::GET, &format!("/runs/{run_id}"));
        self.json(url, request).await
    }

    /// Waits until the run has ended (succeeded, failed or been stopped), looking every
    /// `poll`; the run with its step states.
    pub async fn wait_run(&self, run_id: &str, poll: Duration) -> Result<RunView, ClientError> {
        loop {
            let run = self.run(run_id).await?;
            if !run.phase.is_active() {
                return Ok(run);
            }
            tokio::time::sleep(poll).await;
        }
    }

    // === recurring runs ===

    /// Creates a recurring run; it fires from now on unless created disabled.
    pub async fn create_recurring_run(
        &self,
        recurring_run: &CreateRecurringRun,
    ) -> Result<RecurringRunView, ClientError> {
        let (url, request) = self.request(reqwest::Method::POST, "/recurringruns");
        self.json(url, request.json(recurring_run)).await
    }

    /// Every recurring run, by name.
    pub async fn recurring_runs(&self) -> Result<Vec<RecurringRunView>, ClientError> {
        self.pages("/recurringruns", "recurringRuns").await
    }

    /// A recurring run with its last and next firings and its runs.
    pub async fn recurring_run(&self, name: &str) -> Result<RecurringRunView, ClientError> {
        let (url, request) = self.request(reqwest::Method::GET, &format!("/recurringruns/{name}"));
        self.json(url, request).await
    }

    /// Enables (`true`: it fires from now on) or disables a recurring run.
    pub async fn set_recurring_run_enabled(
        &self,
        name: &str,
        enabled: bool,
    ) -> Result<RecurringRunView, ClientError> {
        let action = if enabled { "enable" } else { "disable" };
        let (url, request) = self.request(
            reqwest::Method::POST,
            &format!("/recurringruns/{name}/{action}"),
        );
        self.json(url, request).await
    }

    /// Deletes a recurring run; the runs it started stay.
    pub async fn delete_recurring_run(&self, name: &str) -> Result<(), ClientError> {
        let (url, request) =
            self.request(reqwest::Method::DELETE, &format!("/recurringruns/{name}"));
        self.send(url, request).await.map(drop)
    }
}

/// A trial of the API as `sextant get` shows it (the same row a stored trial gives).
impl From<TrialView> for TrialRow {
    fn from(trial: TrialView) -> TrialRow {
        TrialRow {
            name: trial.name,
            condition: trial.condition,
            reason: trial.reason,
            message: trial.message,
            parameter_assignments: trial
                .parameter_assignments
                .into_iter()
                .map(|assignment| ParameterAssignment {
                    name: assignment.name,
                    value: assignment.value,
                })
                .collect(),
            // The API shows a trial without an observation as one without metrics.
            observation: (!trial.observation.is_empty()).then(|| Observation {
                metrics: trial
                    .observation
                    .into_iter()
                    .map(|metric| Metric {
                        name: metric.name,
                        min: metric.min,
                        max: metric.max,
                        latest: metric.latest,
                    })
                    .collect(),
            }),
            start_time: trial.start_time,
            completion_time: trial.completion_time,
        }
    }
}
