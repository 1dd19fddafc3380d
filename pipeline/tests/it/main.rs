//! Integration tests of the pipeline crate: real processes, real files, the public API only.

mod argo;
mod bad_input;
mod caching;
mod cancel;
mod cli;
mod dag;
mod database;
mod failures;
mod items;
mod plugin;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sextant_pipeline::{
    Executor, ExecutorConfig, FileRunStore, Pipeline, RunEvent, RunReport, RunRequest,
    StepKindRegistry, StepPhase, StepRecord,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A runs directory in a temporary folder and an executor recording into it.
pub(crate) struct Harness {
    pub(crate) root: tempfile::TempDir,
    pub(crate) executor: Executor,
}

impl Harness {
    pub(crate) fn new(parallelism: usize) -> Self {
        Self::with_kinds(parallelism, StepKindRegistry::default())
    }

    pub(crate) fn with_kinds(parallelism: usize, kinds: StepKindRegistry) -> Self {
        let root = tempfile::tempdir().expect("temporary directory");
        let executor = Executor::new(
            Arc::new(FileRunStore::new(root.path())),
            kinds,
            ExecutorConfig {
                parallelism,
                kill_grace: Duration::from_millis(500),
            },
        );
        Self { root, executor }
    }

    pub(crate) fn path(&self) -> &Path {
        self.root.path()
    }

    pub(crate) fn request(&self, run_id: &str, params: &[(&str, &str)], cache: bool) -> RunRequest {
        RunRequest {
            run_id: run_id.to_owned(),
            run_dir: self.root.path().join(run_id),
            params: params
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            cache,
            trial: None,
        }
    }

    /// Runs `yaml` to the end and returns the report and every event sent.
    pub(crate) async fn run(
        &self,
        yaml: &str,
        run_id: &str,
        params: &[(&str, &str)],
        cache: bool,
    ) -> (RunReport, Vec<RunEvent>) {
        let pipeline = Pipeline::from_yaml(yaml).expect("valid pipeline");
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let report = self
            .executor
            .run(
                &pipeline,
                self.request(run_id, params, cache),
                Some(sender),
                CancellationToken::new(),
            )
            .await
            .expect("run carried out");
        let mut events = Vec::new();
        while let Ok(event) = receiver.try_recv() {
            events.push(event);
        }
        (report, events)
    }
}

/// `apiVersion`, `kind` and `metadata` for a pipeline called `name`.
pub(crate) fn header(name: &str) -> String {
    format!("apiVersion: sextant.dev/v1beta1\nkind: Pipeline\nmetadata: {{name: {name}}}\n")
}

pub(crate) fn record<'a>(
    report: &'a RunReport,
    step: &str,
    item_index: Option<usize>,
) -> &'a StepRecord {
    report
        .steps
        .iter()
        .find(|record| record.step == step && record.item_index == item_index)
        .unwrap_or_else(|| panic!("no record for {step} {item_index:?} in {:#?}", report.steps))
}

pub(crate) fn phase(report: &RunReport, step: &str) -> StepPhase {
    record(report, step, None).phase
}

/// The work directory of a step instance.
pub(crate) fn work_dir(report: &RunReport, step: &str) -> PathBuf {
    report.run_dir.join(step)
}

/// Processes (not zombies) whose process group is `process_group`, read from /proc.
pub(crate) fn live_processes_in_group(process_group: i32) -> Vec<i32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesized command name: state, ppid, pgrp, ...
        let Some(after_name) = stat.rfind(')').map(|index| &stat[index + 2..]) else {
            continue;
        };
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        if fields.len() > 2 && fields[0] != "Z" && fields[2] == process_group.to_string() {
            found.push(pid);
        }
    }
    found
}

/// `pid` is a process that is not a zombie.
pub(crate) fn is_live(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rfind(')')
                .map(|index| stat[index + 2..].starts_with('Z'))
        })
        .is_some_and(|zombie| !zombie)
}

/// Waits until `path` exists, up to `limit`.
pub(crate) async fn wait_for_file(path: &Path, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if path.exists() && std::fs::read_to_string(path).is_ok_and(|text| text.ends_with('\n')) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

pub(crate) fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .expect("pid file")
        .trim()
        .parse()
        .expect("a pid")
}
