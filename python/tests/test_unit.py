"""The client's parts that need no server: SSE parsing, times, typed parameters, spec
bodies, errors, and the requests it sends (through a mock transport)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List

import httpx
import pytest

import sextant
from sextant._sse import parse_events
from sextant.client import spec_body
from sextant.models import convert_value, parse_time


def test_sse_events_are_parsed_as_the_format_says() -> None:
    lines = [
        ": keep-alive",
        "id: 7",
        "event: experiment",
        'data: {"type": "experiment", "name": "a",',
        'data: "condition": "Running"}',
        "",
        "",
        "event: lagged",
        'data:{"missed":3}',
        "",
        "data: not json",
        "",
        "event: trial",  # not dispatched: no blank line ends it
        'data: {"experiment": "a"}',
    ]
    events = list(parse_events(lines))
    assert [(e.type, e.id) for e in events] == [("experiment", 7), ("lagged", None), ("message", None)]
    assert events[0].data == {"type": "experiment", "name": "a", "condition": "Running"}
    assert events[0].experiment == "a" and events[0].condition == "Running"
    assert events[1].data == {"missed": 3}
    assert events[2].data == {"raw": "not json"}


def test_times_keep_nanoseconds_and_offsets_readable() -> None:
    assert parse_time("2024-05-01T10:20:30.123456789Z") == datetime(
        2024, 5, 1, 10, 20, 30, 123456, tzinfo=timezone.utc
    )
    assert parse_time("2024-05-01T12:20:30+02:00") == datetime(
        2024, 5, 1, 10, 20, 30, tzinfo=timezone.utc
    )
    assert parse_time(None) is None and parse_time("") is None
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_values_are_converted_by_their_parameter_type() -> None:
    assert convert_value("3", {"parameterType": "int"}) == 3
    assert convert_value("0.25", {"parameterType": "double"}) == 0.25
    assert convert_value("adam", {"parameterType": "categorical"}) == "adam"
    discrete_ints = {"parameterType": "discrete", "feasibleSpace": {"list": ["16", "32"]}}
    assert convert_value("32", discrete_ints) == 32
    discrete_floats = {"parameterType": "discrete", "feasibleSpace": {"list": ["1", "0.5"]}}
    assert convert_value("1", discrete_floats) == 1.0 and isinstance(
        convert_value("1", discrete_floats), float
    )
    assert convert_value("x", {"parameterType": "double"}) == "x"
    assert convert_value("7", None) == "7"


def test_a_spec_is_sent_as_json_yaml_text_or_a_files_text(tmp_path: Path) -> None:
    assert spec_body({"a": 1}) == (b'{"a": 1}', "application/json")
    assert spec_body("kind: Experiment\n") == (b"kind: Experiment\n", "application/yaml")
    path = tmp_path / "e.yaml"
    path.write_text("kind: Experiment\n")
    assert spec_body(path) == (b"kind: Experiment\n", "application/yaml")
    assert spec_body(str(path)) == (b"kind: Experiment\n", "application/yaml")
    with pytest.raises(FileNotFoundError):
        spec_body(str(tmp_path / "missing.yml"))
    with pytest.raises(TypeError):
        spec_body(3)  # type: ignore[arg-type]


def mock_client(
    handler: Any, seen: List[httpx.Request], **kwargs: Any
) -> sextant.Client:
    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        response: httpx.Response = handler(request)
        return response

    return sextant.Client(transport=httpx.MockTransport(record), **kwargs)


def test_requests_carry_the_token_and_pages_are_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEXTANT_URL", "http://sextant.test:9/")
    monkeypatch.setenv("SEXTANT_TOKEN", "s3cret\n")
    pages: Dict[Any, Dict[str, Any]] = {
        None: {"experiments": [{"metadata": {"name": "a"}}], "nextPageToken": "1"},
        "1": {"experiments": [{"metadata": {"name": "b"}, "status": {"conditions": [
            {"type": "Created", "status": "True"},
            {"type": "Succeeded", "status": "True"},
            {"type": "Running", "status": "False"},
        ]}}]},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[request.url.params.get("pageToken")])

    seen: List[httpx.Request] = []
    with mock_client(handler, seen) as client:
        experiments = client.list_experiments(condition="Succeeded")
    assert [e.name for e in experiments] == ["a", "b"]
    assert experiments[0].condition is None and experiments[1].condition == "Succeeded"
    assert all(r.headers["authorization"] == "Bearer s3cret" for r in seen)
    assert str(seen[0].url).startswith("http://sextant.test:9/api/v1/experiments?")
    assert seen[0].url.params["condition"] == "Succeeded"
    assert "name" not in seen[0].url.params


def test_errors_carry_status_code_message_and_fields() -> None:
    body = {
        "error": {
            "code": "Invalid",
            "message": "the experiment is invalid: 1 problem(s)",
            "fields": [{"path": "spec.parameters[0].feasibleSpace", "rule": "min 5 > max 1"}],
        }
    }
    seen: List[httpx.Request] = []
    with mock_client(lambda r: httpx.Response(422, json=body), seen, url="http://x") as client:
        with pytest.raises(sextant.InvalidError) as caught:
            client.create_experiment({"kind": "Experiment"})
    error = caught.value
    assert (error.status, error.code) == (422, "Invalid")
    assert error.fields == [sextant.FieldProblem("spec.parameters[0].feasibleSpace", "min 5 > max 1")]
    assert "spec.parameters[0].feasibleSpace: min 5 > max 1" in str(error)
    assert isinstance(error, sextant.SextantError) and isinstance(error, RuntimeError)
    assert seen[0].headers["content-type"] == "application/json"
    assert json.loads(seen[0].content) == {"kind": "Experiment"}

    for status, kind in [
        (401, sextant.UnauthorizedError),
        (404, sextant.NotFoundError),
        (409, sextant.ConflictError),
        (503, sextant.UnavailableError),
        (500, sextant.ServerError),
    ]:
        with mock_client(lambda r, s=status: httpx.Response(s, text="<html>proxy</html>"), []) as client:
            with pytest.raises(kind) as raised:
                client.get_experiment("a")
        assert raised.value.status == status and "proxy" in raised.value.message


def test_an_unreachable_server_is_a_transport_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with mock_client(refuse, [], url="http://x") as client:
        with pytest.raises(sextant.TransportError) as caught:
            client.get_experiment("a")
    assert caught.value.status is None


def test_tell_names_the_objective_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={
                "metadata": {"name": "s"},
                "spec": {"objective": {"objectiveMetricName": "loss"}, "parameters": [
                    {"name": "n", "parameterType": "int"}
                ]},
            })
        told = json.loads(request.content)
        return httpx.Response(200, json={
            "name": told["trial"], "experimentName": "s", "condition": told["state"],
            "parameterAssignments": [{"name": "n", "value": "4"}], "objectiveValue": told["values"].get("loss"),
            "createdAt": "2024-01-01T00:00:00Z",
        })

    seen: List[httpx.Request] = []
    with mock_client(handler, seen, url="http://x") as client:
        trial = client.study("s").tell("s-00000", 0.5)
    assert trial.params == {"n": 4} and trial.objective_value == 0.5
    assert json.loads(seen[-1].content) == {"trial": "s-00000", "values": {"loss": 0.5}, "state": "Succeeded"}


def test_pipeline_and_recurring_run_requests_carry_the_apis_fields(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("kind: Pipeline\n")
    run = {"runId": "r", "pipelineName": "p", "params": {"n": "3"}, "phase": "Pending",
           "cacheEnabled": False, "createdAt": "2024-01-01T00:00:00Z", "steps": [
               {"step": "s", "itemIndex": 1, "phase": "Cached", "attempt": 1, "cached": True,
                "outputParams": {"v": "1"}, "outputArtifacts": ["a"]}]}
    recurring = {"name": "n", "pipelineName": "p", "params": {}, "schedule": {"cron": "* * * * *"},
                 "maxConcurrency": 2, "noCatchup": True, "enabled": False, "runs": ["n-1"],
                 "activeRuns": 0, "createdAt": "2024-01-01T00:00:00Z"}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/recurringruns"):
            return httpx.Response(201, json=recurring)
        return httpx.Response(201, json=run)

    seen: List[httpx.Request] = []
    with mock_client(handler, seen, url="http://x") as client:
        got = client.run_pipeline(path, {"n": 3}, run_id="r", cache=False)
        client.run_pipeline({"kind": "Pipeline"})
        made = client.create_recurring_run(
            "n", "kind: Pipeline\nmetadata: {}\n", "* * * * *", max_concurrency=2,
            no_catchup=True, start_time=datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
            enabled=False,
        )
    assert json.loads(seen[0].content) == {
        "pipeline": "kind: Pipeline\n", "params": {"n": "3"}, "runId": "r", "cache": False,
    }
    assert json.loads(seen[1].content) == {"pipeline": {"kind": "Pipeline"}, "params": {}}
    assert json.loads(seen[2].content) == {
        "name": "n", "pipeline": "kind: Pipeline\nmetadata: {}\n", "params": {},
        "schedule": {"cron": "* * * * *", "startTime": "2030-01-02T03:04:05.000000Z"},
        "noCatchup": True, "enabled": False, "maxConcurrency": 2,
    }
    step = got.steps[0]
    assert (step.instance, step.cached, step.output_params) == ("s[1]", True, {"v": "1"})
    assert got.step("s", 1) is step and got.step("s") is None and not got.finished
    assert (made.max_concurrency, made.no_catchup, made.enabled, made.runs) == (2, True, False, ["n-1"])
