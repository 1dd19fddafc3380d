"""Experiments against a live server: submit, wait, read trials and logs, follow events,
stop, resume, delete, and invalid specs refused with their field paths."""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Union

import pytest

import sextant
from sextant import Event, EventStream


def collect(stream: EventStream) -> "queue.Queue[Union[Event, BaseException]]":
    """Reads `stream` on a thread, so a test can wait for an event with a deadline."""
    received: "queue.Queue[Union[Event, BaseException]]" = queue.Queue()

    def read() -> None:
        try:
            for event in stream:
                received.put(event)
        except BaseException as error:  # noqa: BLE001 - handed to the test
            received.put(error)

    threading.Thread(target=read, daemon=True).start()
    return received


def wait_for_event(
    received: "queue.Queue[Union[Event, BaseException]]",
    wanted: Callable[[Event], bool],
    seen: List[Event],
    timeout: float = 60,
) -> Event:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            item = received.get(timeout=max(left, 0.01))
        except queue.Empty:
            pytest.fail(f"no such event within {timeout} s; saw {[(e.type, e.data) for e in seen]}")
        if isinstance(item, BaseException):
            raise item
        seen.append(item)
        if wanted(item):
            return item


def branin_yaml(name: str, script: Path) -> str:
    """A Branin experiment as YAML text (paths as JSON strings, which YAML reads)."""
    python = json.dumps(sys.executable)
    path = json.dumps(str(script))
    return f"""\
apiVersion: kubeflow.org/v1beta1
kind: Experiment
metadata:
  name: {name}
spec:
  objective:
    type: minimize
    objectiveMetricName: loss
  algorithm:
    algorithmName: random
    algorithmSettings:
      - name: random_state
        value: "11"
  parallelTrialCount: 3
  maxTrialCount: 6
  maxFailedTrialCount: 1
  parameters:
    - name: x1
      parameterType: double
      feasibleSpace: {{min: "-5", max: "10"}}
    - name: x2
      parameterType: double
      feasibleSpace: {{min: "0", max: "15"}}
  trialTemplate:
    primaryContainerName: training-container
    trialParameters:
      - name: x1
        reference: x1
      - name: x2
        reference: x2
    trialSpec:
      apiVersion: sextant.dev/v1beta1
      kind: Process
      spec:
        command:
          - {python}
          - {path}
          - --x1=${{trialParameters.x1}}
          - --x2=${{trialParameters.x2}}
"""


def test_an_experiment_runs_to_its_best_trial(
    client: sextant.Client,
    unique: Callable[[str], str],
    branin_script: Path,
    tmp_path: Path,
) -> None:
    name = unique("branin-random")
    spec_file = tmp_path / "branin.yaml"
    spec_file.write_text(branin_yaml(name, branin_script))
    events = client.events(experiment=name)
    received = collect(events)
    try:
        created = client.create_experiment(spec_file)
        assert created.name == name
        assert created.spec["algorithm"]["algorithmName"] == "random"
        assert not created.is_study

        done = client.wait(name, timeout=180, poll=0.5)
        assert done.succeeded, done.status
        assert done.status is not None and done.status.trials_succeeded == 6

        trials = client.trials(name)
        assert len(trials) == 6
        for trial in trials:
            assert trial.condition == "Succeeded", trial
            assert trial.experiment_name == name
            x1, x2 = trial.params["x1"], trial.params["x2"]
            assert isinstance(x1, float) and -5 <= x1 <= 10
            assert isinstance(x2, float) and 0 <= x2 <= 15
            loss = trial.metric("loss")
            assert loss is not None and trial.objective_value == float(loss.min)
        values = [trial.objective_value for trial in trials if trial.objective_value is not None]
        assert len(values) == 6

        best = client.best_trial(name)
        assert best is not None
        assert best.objective_value == min(values)
        assert best.name == min(trials, key=lambda t: t.objective_value or float("inf")).name
        optimal = done.status.current_optimal_trial
        assert optimal is not None and optimal.best_trial_name == best.name
        assert optimal.parameter_assignments == best.parameter_assignments

        ordered = client.trials(name, order_by="objective")
        assert ordered[0].name == best.name
        assert [t.objective_value for t in ordered] == sorted(values)
        worst_first = client.trials(name, order_by="objectiveDescending")
        assert [t.objective_value for t in worst_first] == sorted(values, reverse=True)
        by_x1 = client.trials(name, order_by="parameter", parameter="x1", descending=True)
        x1s = [t.params["x1"] for t in by_x1]
        assert x1s == sorted(x1s, reverse=True) and len(x1s) == len(values)
        assert client.trials(name, condition="Failed") == []

        # The trial's output, whole, its tail, and followed (it has ended: the stream ends).
        output = client.logs(best.name)
        assert "loss=" in output
        assert client.logs(best.name, tail=1).strip().startswith("loss=")
        with client.logs(best.name, follow=True) as stream:
            assert "".join(stream) == output

        logged = client.observations(best.name, metric_name="loss")
        assert [float(entry.value) for entry in logged] == [best.objective_value]
        assert client.get_trial(best.name) == best

        # The stream saw the trials and the experiment succeed, and only this experiment.
        seen: List[Event] = []
        wait_for_event(
            received,
            lambda e: e.type == "experiment" and e.condition == "Succeeded",
            seen,
        )
        assert all(event.experiment == name for event in seen)
        assert any(event.type == "trial" and event.condition == "Succeeded" for event in seen)
        ids = [event.id for event in seen if event.id is not None]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        final = [e for e in seen if e.type == "experiment"][-1]
        assert final.data["trialsSucceeded"] == 6 and final.data["bestTrial"] == best.name

        listed = client.list_experiments(name=name)
        assert [experiment.name for experiment in listed] == [name]
        assert name in [e.name for e in client.list_experiments(condition="Succeeded")]
        assert name not in [e.name for e in client.list_experiments(condition="Running")]
    finally:
        events.close()
        client.delete(name)


def test_an_invalid_spec_is_refused_with_every_field_path(
    client: sextant.Client, unique: Callable[[str], str], branin_script: Path
) -> None:
    name = unique("invalid")
    text = branin_yaml(name, branin_script).replace(
        'feasibleSpace: {min: "-5", max: "10"}', 'feasibleSpace: {min: "5", max: "1"}'
    )
    text = text.replace("parallelTrialCount: 3", "parallelTrialCount: 0")
    with pytest.raises(sextant.InvalidError) as caught:
        client.create_experiment(text)
    error = caught.value
    assert error.status == 422 and error.code == "Invalid"
    assert "spec.parameters[0].feasibleSpace" in error.paths, error.fields
    assert all(problem.rule for problem in error.fields)
    assert "spec.parameters[0].feasibleSpace" in str(error)
    with pytest.raises(sextant.NotFoundError):
        client.get_experiment(name)

    # A mistyped field is refused too, not ignored.
    typo = branin_yaml(name, branin_script).replace("maxTrialCount: 6", "maxTrialCont: 6")
    with pytest.raises(sextant.InvalidError) as caught:
        client.create_experiment(typo)
    assert "maxTrialCont" in str(caught.value)

    # A study's spec has no template; an experiment needs one.
    spec = json.loads(json.dumps(_study_like(name)))
    with pytest.raises(sextant.InvalidError) as caught:
        client.create_experiment(spec)
    assert any("trialTemplate" in path for path in caught.value.paths), caught.value.fields

    with pytest.raises(sextant.BadRequestError):
        client.create_experiment("   \n  \n")
    with pytest.raises(FileNotFoundError):
        client.create_experiment("no-such-file.yaml")


def _study_like(name: str) -> Dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {"algorithmName": "random"},
            "maxTrialCount": 3,
            "parameters": [
                {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}
            ],
        },
    }


def test_stop_resume_and_delete(
    client: sextant.Client,
    unique: Callable[[str], str],
    branin_experiment: Callable[..., Dict[str, Any]],
) -> None:
    name = unique("branin-stop")
    spec = branin_experiment(name, max_trials=3, parallel=1, sleep=1.5)
    client.create_experiment(spec)
    with pytest.raises(sextant.ConflictError):
        client.create_experiment(spec)
    try:
        deadline = time.monotonic() + 60
        while not client.trials(name, condition="Running"):
            assert time.monotonic() < deadline, "no trial started"
            time.sleep(0.2)

        stopped = client.stop(name)
        assert stopped.stopped
        assert client.get_experiment(name).stopped
        with pytest.raises(sextant.ExperimentStoppedError):
            client.wait(name, timeout=30)
        # Nothing runs while it is stopped: the killed trial does not finish, no trial starts.
        before = client.trials(name)
        time.sleep(2.5)
        after = client.trials(name)
        assert [t.name for t in after] == [t.name for t in before]
        assert [t for t in after if t.condition == "Succeeded"] == [
            t for t in before if t.condition == "Succeeded"
        ]
        # The killed trial keeps its condition, so that the server re-runs it on resume;
        # the experiment itself is no longer Running.
        assert [t.condition for t in after if t.condition != "Succeeded"] == ["Running"]
        assert client.get_experiment(name).condition != "Running"
        resumed = client.resume(name, max_trial_count=4)
        assert not resumed.stopped
        assert resumed.spec["maxTrialCount"] == 4
        with pytest.raises(sextant.ConflictError):
            client.resume(name)
        with pytest.raises(sextant.WaitTimeoutError):
            client.wait(name, timeout=0.2, poll=0.1)

        done = client.wait(name, timeout=180, poll=0.5)
        assert done.succeeded, done.status
        assert done.status is not None and done.status.trials_succeeded == 4
        finished = [t for t in client.trials(name) if t.condition == "Succeeded"]
        assert len(finished) == 4
        with pytest.raises(sextant.ConflictError):
            client.stop(name)
    finally:
        events = client.events(experiment=name)
        received = collect(events)
        client.delete(name)
    try:
        wait_for_event(received, lambda e: e.type == "experimentDeleted", [], timeout=30)
    finally:
        events.close()
    with pytest.raises(sextant.NotFoundError) as caught:
        client.get_experiment(name)
    assert caught.value.status == 404 and caught.value.code == "NotFound"
    with pytest.raises(sextant.NotFoundError):
        client.trials(name)
    with pytest.raises(sextant.NotFoundError):
        client.delete(name)
    assert name not in [experiment.name for experiment in client.list_experiments()]


def test_the_openapi_document_lists_the_routes(client: sextant.Client) -> None:
    document = client.openapi()
    assert "/api/v1/experiments" in document["paths"]
    assert "/api/v1/studies/{name}/ask" in document["paths"]


PUSH_SCRIPT = '''\
"""A trial that reports its loss itself, as with Katib's SDK and the Push collector."""
import sys

from sextant import report_metrics

x = float(sys.argv[1])
for epoch in range(3):
    report_metrics({"loss": (x - 0.3) ** 2 + 1.0 / (epoch + 1)})
'''


def test_trials_report_their_metrics_with_report_metrics(
    client: sextant.Client,
    unique: Callable[[str], str],
    server_url: str,
    tmp_path: Path,
) -> None:
    script = tmp_path / "push.py"
    script.write_text(PUSH_SCRIPT)
    name = unique("push")
    spec = _study_like(name)
    spec["spec"].update(
        {
            "parallelTrialCount": 2,
            "metricsCollectorSpec": {"collector": {"kind": "Push"}},
            "trialTemplate": {
                "primaryContainerName": "main",
                "trialParameters": [{"name": "x", "reference": "x"}],
                "trialSpec": {
                    "apiVersion": "sextant.dev/v1beta1",
                    "kind": "Process",
                    "spec": {
                        "command": [sys.executable, str(script.resolve()), "${trialParameters.x}"],
                        # The server does not tell its trials its URL; the template does.
                        "env": [{"name": "SEXTANT_URL", "value": server_url}],
                    },
                },
            },
        }
    )
    client.create_experiment(spec)
    try:
        done = client.wait(name, timeout=120, poll=0.5)
        assert done.succeeded, done.status
        for trial in client.trials(name):
            x = trial.params["x"]
            assert isinstance(x, float)
            logged = client.observations(trial.name, "loss")
            assert len(logged) == 3, trial
            assert trial.objective_value == pytest.approx((x - 0.3) ** 2 + 1.0 / 3)
    finally:
        client.delete(name)
