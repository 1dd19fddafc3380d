"""Fixtures of the client's tests: a client of the live server at ``$SEXTANT_URL`` (tests that
need one are skipped without it), unique names, and a Branin trial script."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator

import pytest

import sextant

#: Branin's global minimum.
BRANIN_MINIMUM = 0.397887

BRANIN_SCRIPT = '''\
"""Branin as a stand-in for training: prints `loss=<value>`, after --sleep seconds."""
import argparse
import math
import time

parser = argparse.ArgumentParser()
parser.add_argument("--x1", type=float, required=True)
parser.add_argument("--x2", type=float, required=True)
parser.add_argument("--sleep", type=float, default=0.0)
args = parser.parse_args()
print(f"x1={args.x1} x2={args.x2}", flush=True)
time.sleep(args.sleep)
b = 5.1 / (4 * math.pi ** 2)
c = 5 / math.pi
t = 1 / (8 * math.pi)
loss = (args.x2 - b * args.x1 ** 2 + c * args.x1 - 6) ** 2 + 10 * (1 - t) * math.cos(args.x1) + 10
print(f"loss={loss}", flush=True)
'''


def branin(x1: float, x2: float) -> float:
    import math

    b = 5.1 / (4 * math.pi**2)
    c = 5 / math.pi
    t = 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


@pytest.fixture(scope="session")
def server_url() -> str:
    url = os.environ.get("SEXTANT_URL")
    if not url:
        pytest.skip("SEXTANT_URL is not set: no live sextant server to test against")
    return url


@pytest.fixture
def client(server_url: str) -> Iterator[sextant.Client]:
    with sextant.Client(server_url, timeout=60) as client:
        yield client


@pytest.fixture
def unique() -> Callable[[str], str]:
    """A name no other test (or earlier run against the same server) has used."""

    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture(scope="session")
def branin_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trial script, by absolute path: trials run in the server's data directory."""
    path = tmp_path_factory.mktemp("scripts") / "branin.py"
    path.write_text(BRANIN_SCRIPT)
    return path.resolve()


BRANIN_PARAMETERS = [
    {"name": "x1", "parameterType": "double", "feasibleSpace": {"min": "-5", "max": "10"}},
    {"name": "x2", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "15"}},
]


@pytest.fixture
def branin_experiment(branin_script: Path) -> Callable[..., Dict[str, Any]]:
    """A Branin experiment spec (a dict) whose trials run the script."""

    def make(
        name: str,
        algorithm: str = "random",
        max_trials: int = 6,
        parallel: int = 3,
        sleep: float = 0.0,
        **spec: Any,
    ) -> Dict[str, Any]:
        return {
            "apiVersion": "kubeflow.org/v1beta1",
            "kind": "Experiment",
            "metadata": {"name": name},
            "spec": {
                "objective": {"type": "minimize", "objectiveMetricName": "loss"},
                "algorithm": {
                    "algorithmName": algorithm,
                    "algorithmSettings": [{"name": "random_state", "value": "7"}],
                },
                "parallelTrialCount": parallel,
                "maxTrialCount": max_trials,
                "maxFailedTrialCount": 1,
                "parameters": BRANIN_PARAMETERS,
                "trialTemplate": {
                    "primaryContainerName": "training-container",
                    "trialParameters": [
                        {"name": "x1", "reference": "x1"},
                        {"name": "x2", "reference": "x2"},
                    ],
                    "trialSpec": {
                        "apiVersion": "sextant.dev/v1beta1",
                        "kind": "Process",
                        "spec": {
                            "command": [
                                sys.executable,
                                str(branin_script),
                                "--x1=${trialParameters.x1}",
                                "--x2=${trialParameters.x2}",
                                f"--sleep={sleep}",
                            ]
                        },
                    },
                },
                **spec,
            },
        }

    return make
