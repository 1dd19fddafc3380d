//! A client of the HTTP API, for the command line (`sextant submit`, `stop` and `logs` with
//! `--server URL`): each call is one request, and a refusal comes back as the server's own
//! error body.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

use crate::views::ErrorBody;

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

    async fn json(
        &self,
        url: String,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, ClientError> {
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

    /// Submits an Experiment (YAML or JSON text); the stored Experiment.
    pub async fn submit(&self, spec: String) -> Result<Value, ClientError> {
        let (url, request) = self.request(reqwest::Method::POST, "/experiments");
        self.json(
            url,
            request
                .header("content-type", "application/yaml")
                .body(spec),
        )
        .await
    }

    /// The Experiment with its status.
    pub async fn experiment(&self, name: &str) -> Result<Value, ClientError> {
        let (url, request) = self.request(reqwest::Method::GET, &format!("/experiments/{name}"));
        self.json(url, request).await
    }

    /// Stops an experiment; the stopped Experiment.
    pub async fn stop(&self, name: &str) -> Result<Value, ClientError> {
        let (url, request) =
            self.request(reqwest::Method::POST, &format!("/experiments/{name}/stop"));
        self.json(url, request).await
    }

    /// Waits until the experiment succeeds or fails, looking every `poll`; the Experiment.
    pub async fn wait(&self, name: &str, poll: Duration) -> Result<Value, ClientError> {
        loop {
            let experiment = self.experiment(name).await?;
            let finished = experiment["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|condition| {
                    condition["status"] == "True"
                        && (condition["type"] == "Succeeded" || condition["type"] == "Failed")
                });
            if finished {
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
}
