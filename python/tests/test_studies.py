"""Studies (ask and tell) against a live server: Bayesian optimization of Branin driven from
Python, typed parameters, failures, the budget, and ``report_metrics``."""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional

import pytest

import sextant
from conftest import BRANIN_MINIMUM, BRANIN_PARAMETERS, branin

#: The simple regret the Bayesian optimization must reach on Branin within MAX_ASKS.
TARGET_REGRET = 1e-3
MAX_ASKS = 60


def study_spec(
    name: str,
    algorithm: str,
    parameters: List[Dict[str, Any]],
    settings: Optional[Dict[str, str]] = None,
    max_trials: int = 60,
) -> Dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": {
            "objective": {"type": "minimize", "objectiveMetricName": "loss"},
            "algorithm": {
                "algorithmName": algorithm,
                "algorithmSettings": [
                    {"name": key, "value": value} for key, value in (settings or {}).items()
                ],
            },
            "maxTrialCount": max_trials,
            "parameters": parameters,
        },
    }


def test_bayesian_optimization_finds_branins_minimum_by_ask_and_tell(
    client: sextant.Client,
) -> None:
    # A fixed name: the algorithm's draws are seeded by random_state and the trials' names,
    # so the run is the same every time.
    name = "branin-bo-study"
    try:
        client.delete(name)
    except sextant.NotFoundError:
        pass
    study = client.create_study(
        study_spec(
            name,
            "bayesianoptimization",
            BRANIN_PARAMETERS,
            {"random_state": "7"},
            max_trials=MAX_ASKS,
        )
    )
    try:
        best = math.inf
        asks = 0
        while asks < MAX_ASKS and best - BRANIN_MINIMUM >= TARGET_REGRET:
            trial = study.ask()
            asks += 1
            assert trial.condition == "Running"
            x1, x2 = trial.params["x1"], trial.params["x2"]
            assert isinstance(x1, float) and isinstance(x2, float)
            value = branin(x1, x2)
            told = study.tell(trial, value)
            assert told.condition == "Succeeded" and told.objective_value == pytest.approx(value)
            best = min(best, value)
        regret = best - BRANIN_MINIMUM
        print(f"bayesianoptimization on Branin: regret {regret:.3g} after {asks} asks")
        assert regret < TARGET_REGRET, f"regret {regret} after {asks} asks"

        experiment = study.experiment()
        assert experiment.is_study
        assert experiment.status is not None and experiment.status.trials_succeeded == asks
        best_trial = study.best_trial()
        assert best_trial is not None and best_trial.objective_value == pytest.approx(best)
        assert [t.name for t in study.trials(order_by="objective")][0] == best_trial.name
    finally:
        study.delete()


def test_a_study_types_its_parameters_and_keeps_its_budget(
    client: sextant.Client, unique: Callable[[str], str]
) -> None:
    name = unique("typed-study")
    parameters = [
        {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.001", "max": "0.1"}},
        {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "5"}},
        {
            "name": "optimizer",
            "parameterType": "categorical",
            "feasibleSpace": {"list": ["sgd", "adam"]},
        },
        {"name": "batch", "parameterType": "discrete", "feasibleSpace": {"list": ["16", "32", "64"]}},
        {"name": "dropout", "parameterType": "discrete", "feasibleSpace": {"list": ["0.1", "0.5"]}},
    ]
    client.create_study(study_spec(name, "random", parameters, {"random_state": "3"}, 3))
    study = client.study(name)
    try:
        trial = study.ask()
        assert isinstance(trial.params["lr"], float) and 0.001 <= trial.params["lr"] <= 0.1
        assert isinstance(trial.params["layers"], int) and 1 <= trial.params["layers"] <= 5
        assert trial.params["optimizer"] in ("sgd", "adam")
        assert trial.params["batch"] in (16, 32, 64) and isinstance(trial.params["batch"], int)
        assert trial.params["dropout"] in (0.1, 0.5) and isinstance(trial.params["dropout"], float)
        assert trial.parameter_assignments["layers"] == str(trial.params["layers"])

        failed = study.tell(trial, state="Failed", message="diverged")
        assert failed.condition == "Failed" and failed.message == "diverged"
        with pytest.raises(sextant.ConflictError):
            study.tell(trial, 1.0)

        second = study.ask()
        with pytest.raises(sextant.InvalidError) as caught:
            study.tell(second, {})
        assert caught.value.paths == ["values.loss"]
        with pytest.raises(sextant.NotFoundError):
            study.tell("no-such-trial", 1.0)
        told = study.tell(second, {"loss": 0.25, "accuracy": 0.5})
        assert told.objective_value == 0.25
        # The observation holds the objective (and additionalMetricNames); the log holds all.
        assert [m.name for m in told.observation] == ["loss"]
        assert {(e.name, float(e.value)) for e in client.observations(second.name)} == {
            ("loss", 0.25),
            ("accuracy", 0.5),
        }

        study.ask()
        with pytest.raises(sextant.ConflictError):
            study.ask()
        with pytest.raises(sextant.ConflictError):
            client.stop(name)
        with pytest.raises(sextant.NotFoundError):
            client.logs(second.name)
        assert client.get_trial(second.name).params == second.params
    finally:
        study.delete()
    with pytest.raises(sextant.NotFoundError):
        study.ask()


def test_report_metrics_posts_a_trials_metrics(
    client: sextant.Client,
    unique: Callable[[str], str],
    server_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = unique("report-study")
    study = client.create_study(study_spec(name, "random", BRANIN_PARAMETERS, max_trials=2))
    try:
        trial = study.ask()
        monkeypatch.setenv("KATIB_TRIAL_NAME", trial.name)
        monkeypatch.setenv("SEXTANT_URL", server_url)
        # Katib's gRPC address is not the HTTP API: SEXTANT_URL is used instead.
        sextant.report_metrics({"loss": 1.5, "accuracy": "0.75"}, "127.0.0.1:6789")
        monkeypatch.delenv("SEXTANT_URL")
        sextant.report_metrics({"loss": 0.5}, db_manager_address=server_url, timeout=10)

        logged = client.observations(trial.name)
        assert [(entry.name, entry.value) for entry in logged] == [
            ("loss", "1.5"),
            ("accuracy", "0.75"),
            ("loss", "0.5"),
        ]
        assert [entry.value for entry in client.observations(trial.name, "loss")] == ["1.5", "0.5"]
        assert all(entry.time_stamp is not None for entry in logged)

        with pytest.raises(ValueError):
            sextant.report_metrics({"loss": 1.0})  # no server URL
        with pytest.raises(ValueError):
            sextant.report_metrics({"loss": "high"}, server_url)
        monkeypatch.setenv("KATIB_TRIAL_NAME", "no-such-trial")
        with pytest.raises(RuntimeError) as caught:
            sextant.report_metrics({"loss": 1.0}, server_url)
        assert isinstance(caught.value, sextant.NotFoundError)
        monkeypatch.delenv("KATIB_TRIAL_NAME")
        with pytest.raises(ValueError):
            sextant.report_metrics({"loss": 1.0}, server_url)
    finally:
        study.delete()
