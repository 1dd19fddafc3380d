//! A step kind plugged in from outside the crate, as the experiment crate's `tune` step will be.

use std::sync::Arc;

use futures::future::BoxFuture;
use sextant_pipeline::{
    ExecutorError, Pipeline, RunPhase, StepContext, StepFailure, StepKind, StepKindRegistry,
    StepOutputs, StepPhase,
};
use tokio_util::sync::CancellationToken;

use crate::{Harness, header, record};

/// Reports the `best` field of its spec as an output parameter and writes a file artifact.
struct FakeTune;

impl StepKind for FakeTune {
    fn kind(&self) -> &str {
        "tune"
    }

    fn run(&self, ctx: StepContext) -> BoxFuture<'_, Result<StepOutputs, StepFailure>> {
        Box::pin(async move {
            let spec = ctx
                .kind_spec
                .ok_or_else(|| StepFailure::Kind("tune needs a spec".to_owned()))?;
            let best = spec["objective"]["best"]
                .as_str()
                .ok_or_else(|| {
                    StepFailure::Kind("spec.objective.best must be a string".to_owned())
                })?
                .to_owned();
            tokio::fs::write(ctx.work_dir.join("trials.json"), spec["trials"].to_string())
                .await
                .map_err(|error| StepFailure::Kind(error.to_string()))?;
            let mut outputs = StepOutputs::default();
            outputs.params.insert("best".to_owned(), best);
            Ok(outputs)
        })
    }
}

fn yaml() -> String {
    format!(
        "{}spec:
  steps:
    - name: prepare
      command: [sh, -c, 'echo 0.25 > lr.txt']
      outputs: {{params: [{{name: lr, path: lr.txt}}]}}
    - name: tune
      kind: tune
      spec:
        objective: {{best: 'lr={{{{steps.prepare.outputs.params.lr}}}}'}}
        trials: [1, 2, 3]
      outputs:
        params: [{{name: best, path: best.txt}}]
        artifacts: [{{name: trials, path: trials.json}}]
    - name: report
      command: [sh, -c, 'printf %s \"$1\" > best.txt', sh, '{{{{steps.tune.outputs.params.best}}}}']
      outputs: {{params: [{{name: best, path: best.txt}}]}}
",
        header("tuning")
    )
}

#[tokio::test]
async fn a_registered_kind_runs_with_substituted_spec_and_feeds_later_steps() {
    let mut kinds = StepKindRegistry::default();
    kinds.register(Arc::new(FakeTune));
    let harness = Harness::with_kinds(2, kinds);
    let (report, _) = harness.run(&yaml(), "r1", &[], false).await;
    assert_eq!(report.phase, RunPhase::Succeeded, "{report:#?}");
    let tune = record(&report, "tune", None);
    assert_eq!(tune.phase, StepPhase::Succeeded);
    assert_eq!(tune.outputs.params["best"], "lr=0.25");
    assert_eq!(
        std::fs::read_to_string(&tune.outputs.artifacts["trials"]).unwrap(),
        "[1,2,3]"
    );
    assert_eq!(
        record(&report, "report", None).outputs.params["best"],
        "lr=0.25"
    );
}

#[tokio::test]
async fn an_unregistered_kind_is_rejected_before_the_run_starts() {
    let harness = Harness::new(2);
    let pipeline = Pipeline::from_yaml(&yaml()).unwrap();
    let error = harness
        .executor
        .run(
            &pipeline,
            harness.request("r1", &[], false),
            None,
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, ExecutorError::UnknownKind { .. }));
    assert_eq!(
        error.to_string(),
        "spec.steps[1].kind: no step kind `tune` is registered (known: command)"
    );
    assert!(!harness.path().join("r1").exists());
}
