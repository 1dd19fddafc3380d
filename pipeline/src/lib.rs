//! Sextant pipelines: a DAG of steps with parameters, artifacts, retries, conditions, fan-out and
//! caching, run on this machine or compiled to an Argo Workflow.
//!
//! This crate owns the pipeline spec, the local executor, the run records it keeps (through the
//! [`RunStore`] trait) and the Argo compiler. It must not depend on the controller: richer step
//! kinds (the experiment crate's `tune` step) are plugged in from above through [`StepKind`].
//! Steps' process groups are `sextant-process`'s, as trials' are.
//!
//! # The spec
//!
//! ```yaml
//! apiVersion: sextant.dev/v1beta1
//! kind: Pipeline
//! metadata: {name: demo}
//! spec:
//!   params: [{name: rows, default: "100"}]
//!   steps:
//!     - name: prepare
//!       command: [python3, prepare.py, --rows, "{{params.rows}}"]
//!       outputs:
//!         params: [{name: count, path: count.txt}]
//!         artifacts: [{name: data, path: data.csv}]
//!     - name: train
//!       image: python:3.12          # only needed to compile for Argo
//!       command: [python3, train.py, --data, "{{steps.prepare.outputs.artifacts.data}}"]
//!       env: {SEED: "1"}
//!       when: "{{steps.prepare.outputs.params.count}} > 0"
//!       retry: {limit: 2, backoffSeconds: 1, maxBackoffSeconds: 30}
//!       timeoutSeconds: 600
//!     - name: report
//!       dependsOn: [train]
//!       withItems: [a, b]           # or mappings: [{lr: "0.1"}, ...] read with {{item.lr}}
//!       command: [echo, "{{item}}"]
//!       cache: false
//! ```
//!
//! - `params`: `name` and optional `default`; a run sets values with `--param name=value`, and a
//!   parameter without a default must be set.
//! - A step has a unique `name` (letters, digits, `-`, `_`), a `command` given as an argv list
//!   (run without a shell: a value with blanks, quotes, `;` or `$(...)` stays one argument), and
//!   optionally `env`, `image`, `outputs`, `when`, `dependsOn`, `withItems`, `retry`,
//!   `timeoutSeconds`, `cache`. A plug-in step has `kind: NAME` and a free-form `spec` mapping
//!   instead of a command.
//! - References, usable in argv items, env values, `when` and plug-in `spec` strings:
//!   `{{params.x}}`; `{{steps.s.outputs.params.p}}` (the text of the output file, trailing newlines
//!   removed); `{{steps.s.outputs.artifacts.a}}` (the artifact's absolute path); `{{item}}` and
//!   `{{item.field}}` inside a `withItems` step. Reading the outputs of a fanned-out step gives a
//!   JSON list over its successful items, in item order (fan-in).
//! - Dependencies come from references and `dependsOn`. At load time, cycles (named:
//!   `a -> b -> a`), unknown references and fields, duplicate names, a missing command and a bad
//!   `when` are rejected with their path (`spec.steps[2].command: ...`), all problems at once.
//! - `when`: comparisons `== != < > <= >=` (numeric when both sides are numbers, else by string),
//!   `&& || !` and parentheses, over values substituted first (see [`condition`]). A false
//!   condition skips the step.
//! - `retry`: `limit` retries after the first attempt, waiting `backoffSeconds` (default 1) and
//!   doubling each time, at most `maxBackoffSeconds`. `timeoutSeconds` bounds each attempt; on
//!   expiry the step's whole process group is killed.
//! - Outputs are paths relative to the step's working directory. A declared output the step did
//!   not write fails the step, naming the file.
//! - `env` adds to (or overrides) the runner's own environment.
//! - `image` and the Argo target: see [`argo`]; `cache` only concerns local runs (the Argo
//!   output has no `memoize`, which needs a ConfigMap per cache).
//!
//! # Running
//!
//! Each step instance works in `<run_dir>/<step>[/<item-index>]`, with `stdout.log` and
//! `stderr.log` there. Ready steps run in parallel up to a limit. A step whose dependency failed,
//! was skipped or was cancelled is skipped; a failed step fails the run, while independent
//! branches still run. A step whose substituted spec and input artifact contents match an earlier
//! successful execution reuses its outputs (artifacts are copied) unless `cache: false` or the run
//! turns caching off. Cancellation (Ctrl-C) sends SIGTERM to every running step's process group,
//! then SIGKILL after a grace period; the run can be resumed, keeping what succeeded.
//!
//! # Layout
//!
//! - [`spec`]: YAML to a validated [`Pipeline`] (the DAG).
//! - [`template`]: `{{...}}` references; [`condition`]: the `when` language (both re-exported
//!   from `sextant-pipeline-expr`, which has no async runtime).
//! - [`executor`]: the local scheduler, retries, caching, cancellation, resume.
//! - [`kind`]: the [`StepKind`] plug-in trait and the built-in command kind (process groups).
//! - [`cache`]: cache keys and artifact digests.
//! - [`run_store`]: the [`RunStore`] trait and the file-backed [`FileRunStore`].
//! - [`database_store`]: [`RunStore`] for `sextant_store::Store` (SQLite, PostgreSQL, MySQL).
//! - [`argo`]: compilation to an Argo Workflow; plug-in kinds add their Argo form through
//!   [`ArgoStepForm`].
//! - [`schedule`]: when a recurring run fires (cron in a time zone, concurrency, catch-up),
//!   for `sextant server`'s scheduler and the cluster's RecurringRun controller alike.
//! - [`cli`]: the `sextant pipeline` commands (clap arguments and entry points).

pub mod argo;
pub mod cache;
pub mod cli;
pub mod database_store;
pub mod executor;
pub mod kind;
pub mod run_store;
pub mod schedule;
pub mod spec;

/// The expression language, from `sextant-pipeline-expr`.
pub use sextant_pipeline_expr::{condition, template};

pub use argo::{
    ArgoCompileError, ArgoForms, ArgoStep, ArgoStepForm, compile_argo, compile_argo_with,
};
pub use executor::{
    Executor, ExecutorConfig, ExecutorError, RunEvent, RunReport, RunRequest, new_run_id,
};
pub use kind::{
    CommandStepKind, StepContext, StepFailure, StepKind, StepKindRegistry, StepOutputs,
};
pub use run_store::{
    FileRunStore, RunPhase, RunRecord, RunStore, RunStoreError, StepPhase, StepRecord, StoredRun,
};
pub use spec::{Pipeline, SpecError, Step};
/// The cancellation handle the executor and step kinds take (re-exported so callers need not
/// depend on tokio-util themselves).
pub use tokio_util::sync::CancellationToken;
