"""Pipelines against a live server: a run passing an output parameter and an artifact from one
step to the next, its step states, logs and artifact bytes; a failing step retried; a
stopped run; refusals by field path; and recurring runs that fire, list, disable and go."""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Dict

import pytest

import sextant

#: ``prepare`` counts its executions in COUNTER, writes ``rows`` lines of CSV (the artifact
#: ``data``) and the line count (the output parameter ``count``); ``train`` gets both, prints
#: what it read, and exits 3 until the file GATE exists.
PREPARE = (
    "import sys; open(sys.argv[1], 'a').write('x'); rows = int(sys.argv[2]); "
    "open('data.csv', 'w').write('a,b\\n' * rows); open('count.txt', 'w').write(str(rows)); "
    "print('prepared', rows)"
)
TRAIN = (
    "import os, sys; lines = open(sys.argv[2]).read().count('\\n'); "
    "print('count', sys.argv[1], 'lines', lines); "
    "print('no gate', file=sys.stderr) if not os.path.exists(sys.argv[3]) else None; "
    "sys.exit(0 if os.path.exists(sys.argv[3]) else 3)"
)


def two_steps(name: str, counter: Path, gate: Path) -> Dict[str, Any]:
    return {
        "apiVersion": "sextant.dev/v1beta1",
        "kind": "Pipeline",
        "metadata": {"name": name},
        "spec": {
            "params": [{"name": "rows", "default": "2"}],
            "steps": [
                {
                    "name": "prepare",
                    "command": [sys.executable, "-c", PREPARE, str(counter), "{{params.rows}}"],
                    "outputs": {
                        "params": [{"name": "count", "path": "count.txt"}],
                        "artifacts": [{"name": "data", "path": "data.csv"}],
                    },
                },
                {
                    "name": "train",
                    "command": [
                        sys.executable,
                        "-c",
                        TRAIN,
                        "{{steps.prepare.outputs.params.count}}",
                        "{{steps.prepare.outputs.artifacts.data}}",
                        str(gate),
                    ],
                },
            ],
        },
    }


def test_a_run_passes_an_output_param_and_an_artifact_and_shows_steps_logs_and_bytes(
    client: sextant.Client, unique: Callable[[str], str], tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    name = unique("two-steps")
    run = client.run_pipeline(two_steps(name, tmp_path / "counter", gate), {"rows": 5})
    assert run.pipeline_name == name and run.params == {"rows": "5"}
    run = client.wait_run(run, timeout=60, poll=0.2)
    assert run.phase == "Succeeded" and run.succeeded and run.finished, run
    prepare, train = run.step("prepare"), run.step("train")
    assert prepare is not None and train is not None
    assert (prepare.phase, train.phase) == ("Succeeded", "Succeeded")
    assert prepare.output_params == {"count": "5"}
    assert prepare.output_artifacts == ["data"]
    assert prepare.attempt == 1 and not prepare.cached
    assert client.step_log(run, "prepare") == "prepared 5\n"
    assert client.step_log(run.run_id, "train") == "count 5 lines 5\n"
    assert client.step_log(run, "train", stream="stderr") == ""

    artifacts = client.artifacts(run)
    assert [(a.step, a.name, a.size) for a in artifacts] == [("prepare", "data", 20)]
    assert client.download_artifact(run, "prepare", "data") == b"a,b\n" * 5
    with pytest.raises(sextant.NotFoundError):
        client.download_artifact(run, "prepare", "nope")
    with pytest.raises(sextant.NotFoundError):
        client.step_log(run, "nope")

    assert client.get_run(run.run_id).phase == "Succeeded"
    listed = client.list_runs(pipeline=name)
    assert [r.run_id for r in listed] == [run.run_id]
    assert listed[0].steps == []  # lists leave the steps out
    assert run.run_id in [r.run_id for r in client.list_runs(phase="Succeeded")]
    assert client.list_runs(pipeline=name, phase="Failed") == []


def test_a_failing_step_fails_the_run_and_a_retry_runs_only_what_did_not_succeed(
    client: sextant.Client, unique: Callable[[str], str], tmp_path: Path
) -> None:
    counter, gate = tmp_path / "counter", tmp_path / "gate"
    run_id = unique("failing")
    run = client.run_pipeline(two_steps(unique("gated"), counter, gate), run_id=run_id)
    assert run.run_id == run_id
    run = client.wait_run(run_id, timeout=60, poll=0.2)
    assert run.phase == "Failed" and run.finished and not run.succeeded, run
    assert [(s.step, s.phase) for s in run.steps] == [("prepare", "Succeeded"), ("train", "Failed")]
    assert client.step_log(run, "train", stream="stderr") == "no gate\n"
    # A failed run's artifacts are still there to read.
    assert client.download_artifact(run, "prepare", "data") == b"a,b\n" * 2
    with pytest.raises(sextant.ConflictError):
        client.run_pipeline(two_steps("again", counter, gate), run_id=run_id)

    gate.touch()
    retried = client.retry_run(run)
    assert retried.run_id == run_id
    run = client.wait_run(retried, timeout=60, poll=0.2)
    assert run.phase == "Succeeded", run
    assert [s.phase for s in run.steps] == ["Succeeded", "Succeeded"]
    assert counter.read_text() == "x", "prepare ran once: the retry kept its result"
    with pytest.raises(sextant.ConflictError):
        client.retry_run(run)


def test_a_stopped_run_is_cancelled_and_a_wait_can_time_out(
    client: sextant.Client, unique: Callable[[str], str]
) -> None:
    pipeline = f"""\
apiVersion: sextant.dev/v1beta1
kind: Pipeline
metadata: {{name: {unique("sleepy")}}}
spec:
  steps:
    - name: sleep
      command: ["{sys.executable}", -c, "import time; print('sleeping', flush=True); time.sleep(60)"]
"""
    run = client.run_pipeline(pipeline, cache=False)
    with pytest.raises(sextant.WaitTimeoutError):
        client.wait_run(run, timeout=0.5, poll=0.1)
    client.stop_run(run)
    run = client.wait_run(run, timeout=30, poll=0.2)
    assert run.phase == "Cancelled" and run.finished, run
    assert not run.cache_enabled
    with pytest.raises(sextant.ConflictError):
        client.stop_run(run)


def test_invalid_pipelines_and_params_are_refused_by_field_path(
    client: sextant.Client, unique: Callable[[str], str], tmp_path: Path
) -> None:
    name = unique("refused")
    spec = two_steps(name, tmp_path / "counter", tmp_path / "gate")
    spec["spec"]["steps"][1]["command"] = []
    with pytest.raises(sextant.InvalidError) as caught:
        client.run_pipeline(spec)
    assert "pipeline.spec.steps[1].command" in caught.value.paths
    with pytest.raises(sextant.InvalidError) as caught:
        client.run_pipeline(two_steps(name, tmp_path / "c", tmp_path / "g"), {"nope": 1})
    assert caught.value.paths == ["params.nope"]
    with pytest.raises(sextant.NotFoundError):
        client.get_run(unique("missing"))
    assert client.list_runs(pipeline=name) == []


def test_a_recurring_run_fires_and_is_listed_disabled_enabled_and_deleted(
    client: sextant.Client, unique: Callable[[str], str], tmp_path: Path
) -> None:
    pipeline = tmp_path / "tick.yaml"
    pipeline.write_text(
        f"""\
apiVersion: sextant.dev/v1beta1
kind: Pipeline
metadata: {{name: {unique("tick")}}}
spec:
  params: [{{name: label}}]
  steps:
    - name: work
      cache: false
      command: ["{sys.executable}", -c, "import sys; print('tick', sys.argv[1])", "{{{{params.label}}}}"]
"""
    )
    with pytest.raises(sextant.InvalidError) as caught:
        client.create_recurring_run(unique("bad"), pipeline, "61 * * * *", {"label": "x"})
    assert caught.value.paths == ["schedule.cron"]

    name = unique("ticker")
    created = client.create_recurring_run(
        name, pipeline, "* * * * * *", {"label": "x"}, max_concurrency=1, no_catchup=True
    )
    assert (created.name, created.enabled, created.max_concurrency) == (name, True, 1)
    assert created.no_catchup and created.schedule.cron == "* * * * * *"
    assert created.params == {"label": "x"} and created.next_firing is not None
    deadline = time.monotonic() + 30
    while not client.get_recurring_run(name).runs:
        assert time.monotonic() < deadline, "the recurring run never fired"
        time.sleep(0.2)
    fired = client.get_recurring_run(name).runs[0]
    assert fired.startswith(f"{name}-")
    run = client.wait_run(fired, timeout=30, poll=0.2)
    assert run.phase == "Succeeded" and run.params == {"label": "x"}
    assert client.step_log(run, "work") == "tick x\n"
    assert name in [r.name for r in client.list_recurring_runs()]

    disabled = client.disable_recurring_run(name)
    assert not disabled.enabled and disabled.next_firing is None
    assert client.enable_recurring_run(name).enabled
    client.delete_recurring_run(name)
    with pytest.raises(sextant.NotFoundError):
        client.get_recurring_run(name)
    assert name not in [r.name for r in client.list_recurring_runs()]

    # Created disabled, within a window: the fields reach the server as given.
    start = datetime(2099, 1, 1, tzinfo=timezone.utc)
    end = datetime(2100, 1, 1, tzinfo=timezone.utc)
    later = client.create_recurring_run(
        unique("later"), str(pipeline), "0 0 * * *", {"label": "y"},
        start_time=start, end_time=end, enabled=False,
    )
    assert (later.schedule.start_time, later.schedule.end_time) == (start, end)
    assert not later.enabled and later.max_concurrency == 10 and not later.no_catchup
    client.delete_recurring_run(later.name)
