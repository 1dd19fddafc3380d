//! Where runs and step states are recorded: the [`RunStore`] trait and a file-backed store.
//! (The database-backed store, over `sextant_store::Store`, is in [`crate::database_store`].)
//!
//! The executor writes every run and step state change through [`RunStore`], looks up cached
//! results by key through it, and resumes an interrupted run from what it loads. The trait is
//! object-safe (methods return boxed futures) so the CLI can pick a backend at run time.
//! [`FileRunStore`] keeps each run as a JSON-lines log, `<root>/<run_id>/run.jsonl` (the last
//! line for a run or a step instance wins), and the cache index as one file per key,
//! `<root>/cache/<key>.json`, written atomically (temporary file, then rename).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::kind::StepOutputs;

/// A boxed future returned by [`RunStore`] methods.
pub type StoreFuture<'a, T> = BoxFuture<'a, Result<T, RunStoreError>>;

/// Persistence of pipeline runs.
pub trait RunStore: Send + Sync {
    /// Creates or replaces the record of a run.
    fn save_run<'a>(&'a self, run: &'a RunRecord) -> StoreFuture<'a, ()>;

    /// Records the new state of one step instance of a run.
    fn record_step<'a>(&'a self, run_id: &'a str, step: &'a StepRecord) -> StoreFuture<'a, ()>;

    /// The run and the latest state of each of its step instances, if the run exists.
    fn load_run<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Option<StoredRun>>;

    /// The latest successful execution recorded with `cache_key`, in any run.
    fn find_cached<'a>(&'a self, cache_key: &'a str) -> StoreFuture<'a, Option<StepRecord>>;
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Unique id, also the name of the run's directory.
    pub run_id: String,
    /// `metadata.name` of the pipeline.
    pub pipeline_name: String,
    /// The pipeline YAML, so the run can be resumed from the store alone.
    pub source: String,
    /// The resolved parameter values.
    pub params: BTreeMap<String, String>,
    /// The run's directory (absolute).
    pub run_dir: PathBuf,
    /// Whether cached results may be reused in this run.
    pub cache_enabled: bool,
    /// Where the run is.
    pub phase: RunPhase,
    /// When the run was created.
    pub created_at: DateTime<Utc>,
    /// When the run (last) started executing.
    pub started_at: Option<DateTime<Utc>>,
    /// When the run ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Why the run ended as it did.
    pub message: Option<String>,
    /// The trial the run belongs to, when a trial's template is this pipeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<String>,
    /// The namespace of the PipelineRun this record mirrors, when the persistence agent wrote
    /// it from a cluster: such a run is the cluster's to execute, stop and delete, never this
    /// machine's (its `run_dir` is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_namespace: Option<String>,
}

/// One step instance's state as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step's name.
    pub step: String,
    /// The `withItems` index, for fanned-out steps.
    pub item_index: Option<usize>,
    /// Where the instance is.
    pub phase: StepPhase,
    /// The attempt in progress or last made (0 before the first).
    pub attempt: u32,
    /// The digest identifying the step's resolved inputs, when caching applied.
    pub cache_key: Option<String>,
    /// What the instance produced (when it succeeded or was served from the cache).
    pub outputs: StepOutputs,
    /// Why it failed or was skipped, or where a cached result came from.
    pub message: Option<String>,
    /// When the first attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the instance reached a final phase.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A run with the latest state of each step instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRun {
    /// The run.
    pub run: RunRecord,
    /// Latest state per (step, item index), in the order first recorded.
    pub steps: Vec<StepRecord>,
}

/// The phase of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunPhase {
    /// Created, not started.
    Pending,
    /// Executing.
    Running,
    /// Every step succeeded, was served from the cache or was skipped by a condition.
    Succeeded,
    /// A step failed (or the run could not go on).
    Failed,
    /// Stopped by the user; resumable.
    Cancelled,
}

/// The phase of a step instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepPhase {
    /// Waiting to run.
    Pending,
    /// Running (possibly between retries).
    Running,
    /// Ran and succeeded.
    Succeeded,
    /// Reused the outputs of an earlier identical execution.
    Cached,
    /// Failed after its retries.
    Failed,
    /// Not run: its condition was false, or a step it depends on did not succeed.
    Skipped,
    /// Stopped by the user.
    Cancelled,
}

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RunStoreError {
    /// A file of the store could not be read or written.
    #[error("run store: cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// A stored record could not be decoded.
    #[error("run store: corrupt record in {}: {source}", path.display())]
    Corrupt {
        /// The file concerned.
        path: PathBuf,
        /// What did not decode.
        #[source]
        source: serde_json::Error,
    },
    /// A blocking task of the store could not finish, or a record does not fit the store.
    #[error("run store: {0}")]
    Backend(String),
    /// The database failed.
    #[error("run store: {0}")]
    Database(#[from] sextant_store::Error),
    /// A record could not be encoded as JSON.
    #[error("run store: cannot encode a record: {0}")]
    Encode(#[source] serde_json::Error),
    /// A stored record is not valid JSON of the expected shape.
    #[error("run store: corrupt record in the database: {0}")]
    Decode(#[source] serde_json::Error),
}

/// A [`RunStore`] in plain files under one root directory (the runs directory).
#[derive(Debug)]
pub struct FileRunStore {
    root: PathBuf,
    /// Serializes appends from the tasks of one process so lines never interleave.
    append_lock: Mutex<()>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "lowercase")]
enum LogLine {
    Run(RunRecord),
    Step(StepRecord),
}

// === impl RunPhase / StepPhase ===

impl RunPhase {
    /// Whether the run has not ended yet (Pending or Running).
    pub fn is_active(self) -> bool {
        matches!(self, Self::Pending | Self::Running)
    }
}

impl fmt::Display for RunPhase {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
            Self::Cancelled => "Cancelled",
        })
    }
}

impl StepPhase {
    /// The instance's outputs are usable by dependents.
    pub fn is_successful(self) -> bool {
        matches!(self, Self::Succeeded | Self::Cached)
    }
}

impl fmt::Display for StepPhase {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Cached => "Cached",
            Self::Failed => "Failed",
            Self::Skipped => "Skipped",
            Self::Cancelled => "Cancelled",
        })
    }
}

// === impl FileRunStore ===

impl FileRunStore {
    /// A store under `root`; directories are created when first written.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            append_lock: Mutex::new(()),
        }
    }

    fn log_path(&self, run_id: &str) -> PathBuf {
        self.root.join(run_id).join("run.jsonl")
    }

    fn cache_path(&self, cache_key: &str) -> PathBuf {
        self.root.join("cache").join(format!("{cache_key}.json"))
    }

    async fn append(&self, run_id: &str, line: &LogLine) -> Result<(), RunStoreError> {
        let path = self.log_path(run_id);
        let mut text = serde_json::to_string(line).map_err(|source| RunStoreError::Corrupt {
            path: path.clone(),
            source,
        })?;
        text.push('\n');
        let _guard = self.append_lock.lock().await;
        let append_path = path.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if let Some(parent) = append_path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&append_path)?;
            // One write call per line: O_APPEND keeps the line whole even if another
            // process appends to the same log.
            file.write_all(text.as_bytes())
        })
        .await
        .map_err(|join_error| RunStoreError::Backend(format!("store task failed: {join_error}")))?
        .map_err(|source| RunStoreError::Io {
            action: "append to",
            path,
            source,
        })
    }

    async fn write_cache_entry(&self, step: &StepRecord) -> Result<(), RunStoreError> {
        let Some(cache_key) = &step.cache_key else {
            return Ok(());
        };
        let path = self.cache_path(cache_key);
        let text = serde_json::to_vec(step).map_err(|source| RunStoreError::Corrupt {
            path: path.clone(),
            source,
        })?;
        let write_path = path.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let directory = write_path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(directory)?;
            let temporary = directory.join(format!(
                ".{}.{}.tmp",
                std::process::id(),
                write_path
                    .file_name()
                    .and_then(|name| name.to_str())
                    .unwrap_or("entry")
            ));
            std::fs::write(&temporary, text)?;
            std::fs::rename(&temporary, &write_path)
        })
        .await
        .map_err(|join_error| RunStoreError::Backend(format!("store task failed: {join_error}")))?
        .map_err(|source| RunStoreError::Io {
            action: "write cache entry",
            path,
            source,
        })
    }
}

impl RunStore for FileRunStore {
    fn save_run<'a>(&'a self, run: &'a RunRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move { self.append(&run.run_id, &LogLine::Run(run.clone())).await })
    }

    fn record_step<'a>(&'a self, run_id: &'a str, step: &'a StepRecord) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            self.append(run_id, &LogLine::Step(step.clone())).await?;
            if step.phase == StepPhase::Succeeded {
                self.write_cache_entry(step).await?;
            }
            Ok(())
        })
    }

    fn load_run<'a>(&'a self, run_id: &'a str) -> StoreFuture<'a, Option<StoredRun>> {
        Box::pin(async move {
            let path = self.log_path(run_id);
            let text = match tokio::fs::read_to_string(&path).await {
                Ok(text) => text,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(source) => {
                    return Err(RunStoreError::Io {
                        action: "read",
                        path,
                        source,
                    });
                }
            };
            let mut run = None;
            let mut steps: Vec<StepRecord> = Vec::new();
            let line_count = text.lines().count();
            for (index, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let parsed = match serde_json::from_str::<LogLine>(line) {
                    Ok(parsed) => parsed,
                    // A runner killed mid-write can leave a torn last line; earlier lines are whole.
                    Err(_) if index + 1 == line_count && !text.ends_with('\n') => break,
                    Err(source) => return Err(RunStoreError::Corrupt { path, source }),
                };
                match parsed {
                    LogLine::Run(record) => run = Some(record),
                    LogLine::Step(record) => {
                        match steps.iter_mut().find(|existing| {
                            existing.step == record.step && existing.item_index == record.item_index
                        }) {
                            Some(existing) => *existing = record,
                            None => steps.push(record),
                        }
                    }
                }
            }
            Ok(run.map(|run| StoredRun { run, steps }))
        })
    }

    fn find_cached<'a>(&'a self, cache_key: &'a str) -> StoreFuture<'a, Option<StepRecord>> {
        Box::pin(async move {
            let path = self.cache_path(cache_key);
            match tokio::fs::read(&path).await {
                Ok(bytes) => serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|source| RunStoreError::Corrupt { path, source }),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(RunStoreError::Io {
                    action: "read",
                    path,
                    source,
                }),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, phase: StepPhase, cache_key: Option<&str>) -> StepRecord {
        StepRecord {
            step: name.to_owned(),
            item_index: None,
            phase,
            attempt: 1,
            cache_key: cache_key.map(str::to_owned),
            outputs: StepOutputs::default(),
            message: None,
            started_at: None,
            finished_at: None,
        }
    }

    #[tokio::test]
    async fn keeps_the_latest_state_per_instance_and_indexes_successes() {
        let directory = tempfile::tempdir().unwrap();
        let store = FileRunStore::new(directory.path());
        let run = RunRecord {
            run_id: "r1".into(),
            pipeline_name: "p".into(),
            source: "x".into(),
            params: BTreeMap::new(),
            run_dir: directory.path().join("r1"),
            cache_enabled: true,
            phase: RunPhase::Running,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
            message: None,
            trial: None,
            cluster_namespace: None,
        };
        store.save_run(&run).await.unwrap();
        store
            .record_step("r1", &step("a", StepPhase::Running, None))
            .await
            .unwrap();
        store
            .record_step("r1", &step("b", StepPhase::Running, None))
            .await
            .unwrap();
        store
            .record_step("r1", &step("a", StepPhase::Succeeded, Some("k1")))
            .await
            .unwrap();
        let loaded = store.load_run("r1").await.unwrap().unwrap();
        assert_eq!(loaded.run, run);
        assert_eq!(loaded.steps.len(), 2);
        assert_eq!(loaded.steps[0].phase, StepPhase::Succeeded);
        assert_eq!(store.find_cached("k1").await.unwrap().unwrap().step, "a");
        assert!(store.find_cached("k2").await.unwrap().is_none());
        assert!(store.load_run("missing").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn ignores_a_torn_last_line_but_not_a_corrupt_middle() {
        let directory = tempfile::tempdir().unwrap();
        let store = FileRunStore::new(directory.path());
        store
            .record_step("r1", &step("a", StepPhase::Running, None))
            .await
            .unwrap();
        let log = directory.path().join("r1/run.jsonl");
        let mut text = std::fs::read_to_string(&log).unwrap();
        text.push_str("{\"record\":\"st");
        std::fs::write(&log, &text).unwrap();
        // No run line was written, so the run does not exist, but the torn line is no error.
        assert!(store.load_run("r1").await.unwrap().is_none());
        text.push_str("\n{}\n");
        std::fs::write(&log, &text).unwrap();
        assert!(matches!(
            store.load_run("r1").await,
            Err(RunStoreError::Corrupt { .. })
        ));
    }
}
