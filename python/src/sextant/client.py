"""The client of a ``sextant server``'s HTTP API (``/api/v1``): experiments, their trials and
logs, the event stream, studies (ask and tell), pipeline runs with their step logs and
artifacts, and recurring runs.

Every method is one request or a short series of them (lists follow their pages); failures
raise a :class:`~sextant.errors.SextantError` subclass. Streams (:meth:`Client.events`,
:meth:`Client.logs` with ``follow=True``) connect when called and are read as they are
iterated; close them (or use them as context managers) when done.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from typing import (
    Any,
    Callable,
    Dict,
    Generic,
    Iterator,
    List,
    Literal,
    Mapping,
    Optional,
    Type,
    TypeVar,
    Union,
    overload,
)
from types import TracebackType
from urllib.parse import quote

import httpx

from ._sse import parse_events
from .errors import (
    ExperimentStoppedError,
    TransportError,
    WaitTimeoutError,
    error_from_response,
)
from .models import (
    RUN_FINAL_PHASES,
    Artifact,
    Event,
    Experiment,
    MetricLog,
    RecurringRun,
    Run,
    Trial,
)

__all__ = ["Client", "EventStream", "LogStream", "LogStreamName", "Spec", "Study", "TrialOrder"]

#: An experiment, study or pipeline spec: a dict (sent as JSON), YAML (or JSON) text, or the
#: path of a YAML or JSON file.
Spec = Union[Mapping[str, Any], str, "os.PathLike[str]"]

#: Which output of a step :meth:`Client.step_log` reads.
LogStreamName = Literal["stdout", "stderr"]

#: The order of :meth:`Client.trials`: creation order, best objective first, or worst first.
TrialOrder = Literal[
    "created", "objective", "objectiveDescending", "name", "condition", "completionTime", "parameter"
]

#: Where the server listens by default (``sextant server``'s ``--listen``).
DEFAULT_URL = "http://127.0.0.1:8080"

#: Seconds a request may take to connect, send, or wait for each read.
DEFAULT_TIMEOUT = 30.0

_PAGE_SIZE = 1000

T = TypeVar("T")


def _api_base(url: str) -> str:
    base = url.rstrip("/")
    if not base.endswith("/api/v1"):
        base += "/api/v1"
    return base


def _segment(name: str) -> str:
    return quote(name, safe="")


def spec_body(spec: Spec) -> "tuple[bytes, str]":
    """The request body and content type of a spec: a mapping as JSON; a path (or a string
    of one line naming an existing file, or ending in ``.yaml``, ``.yml`` or ``.json``) as
    the file's text; any other string as YAML text."""
    value = spec_value(spec)
    if isinstance(value, Mapping):
        return json.dumps(value).encode(), "application/json"
    # JSON is YAML; the server reads either from an application/yaml body.
    return value.encode(), "application/yaml"


def spec_value(spec: Spec) -> "Union[Mapping[str, Any], str]":
    """A spec as a mapping (given as one), or as YAML (or JSON) text: its file's (a path, or
    a string of one line naming an existing file, or ending in ``.yaml``, ``.yml`` or
    ``.json``) or the string itself."""
    if isinstance(spec, Mapping):
        return spec
    if isinstance(spec, os.PathLike):
        return _read_spec_file(os.fspath(spec))
    if isinstance(spec, str):
        one_line = "\n" not in spec.strip()
        if one_line and (
            os.path.isfile(spec) or spec.strip().lower().endswith((".yaml", ".yml", ".json"))
        ):
            return _read_spec_file(spec.strip())
        return spec
    raise TypeError(f"a spec is a dict, YAML text or a file path, not {type(spec).__name__}")


def _read_spec_file(path: str) -> str:
    with open(path, encoding="utf-8") as file:
        return file.read()


def _rfc3339(moment: datetime) -> str:
    """``moment`` in UTC as RFC 3339 (a naive time is taken as local time)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _run_id(run: Union[Run, str]) -> str:
    return run.run_id if isinstance(run, Run) else run


def _wait_for(
    read: Callable[[], T],
    done: Callable[[T], bool],
    late: Callable[[T], str],
    timeout: Optional[float],
    poll: float,
) -> T:
    """Reads until ``done`` holds for what was read, every ``poll`` seconds, and returns it;
    after ``timeout`` seconds (``None``: no limit), raises :class:`WaitTimeoutError` saying
    ``late`` of the last read."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if deadline is None:
            time.sleep(poll)
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            raise WaitTimeoutError(late(value), code="Timeout")
        time.sleep(min(poll, left))


class _Stream(Generic[T]):
    """An open streamed response, read as it is iterated."""

    def __init__(self, response: httpx.Response, items: Iterator[T]) -> None:
        self._response = response
        self._items = items

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        try:
            return next(self._items)
        except httpx.HTTPError as error:
            self.close()
            raise TransportError(f"the stream broke: {error}", code="Transport") from error
        except StopIteration:
            self.close()
            raise

    def close(self) -> None:
        """Ends the stream (the server sees the connection close)."""
        self._response.close()

    def __enter__(self) -> _Stream[T]:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.close()


class EventStream(_Stream[Event]):
    """The server's events as they happen (see :class:`~sextant.models.Event`): an iterator
    that never ends by itself, until closed or the server shuts down. It is subscribed when
    :meth:`Client.events` returns, so nothing published after that is missed."""

    def __enter__(self) -> EventStream:
        return self


class LogStream(_Stream[str]):
    """A trial's output as it is printed, in chunks of text; ends when the trial has
    finished and everything it printed was sent."""

    def __enter__(self) -> LogStream:
        return self


class Client:
    """A client of one ``sextant server``.

    Args:
        url: The server, e.g. ``http://127.0.0.1:8080`` (``/api/v1`` is added unless given);
            default: ``$SEXTANT_URL``, else ``http://127.0.0.1:8080``.
        token: The bearer token the server requires (``--token-file``); default:
            ``$SEXTANT_TOKEN``, else none.
        timeout: Seconds a request may take to connect, to send, and between reads. Streams
            wait for their next chunk without a limit.
        transport: An ``httpx`` transport (for tests, proxies, or a Unix socket).
    """

    def __init__(
        self,
        url: Optional[str] = None,
        token: Optional[str] = None,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        transport: Optional[httpx.BaseTransport] = None,
    ) -> None:
        url = url or os.environ.get("SEXTANT_URL") or DEFAULT_URL
        token = token if token is not None else os.environ.get("SEXTANT_TOKEN") or None
        self.url = _api_base(url)
        self.timeout = timeout
        headers = {"Accept": "application/json", "User-Agent": "sextant-client/0.1"}
        if token:
            headers["Authorization"] = f"Bearer {token.strip()}"
        self._http = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(timeout),
            transport=transport,
        )

    # === plumbing ===

    def close(self) -> None:
        """Closes the connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Optional[Mapping[str, Any]] = None,
        json_body: Any = None,
        content: Optional[bytes] = None,
        content_type: Optional[str] = None,
        stream: bool = False,
        accept: Optional[str] = None,
    ) -> httpx.Response:
        headers: Dict[str, str] = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if accept is not None:
            headers["Accept"] = accept
        if json_body is not None:
            content = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        query = {key: value for key, value in (params or {}).items() if value is not None}
        request = self._http.build_request(
            method,
            path,
            params=query,
            content=content,
            headers=headers,
            # A stream waits for its next chunk as long as it takes.
            timeout=httpx.Timeout(self.timeout, read=None) if stream else httpx.USE_CLIENT_DEFAULT,
        )
        try:
            response = self._http.send(request, stream=stream)
        except httpx.HTTPError as error:
            raise TransportError(
                f"{method} {request.url} failed: {error!r}", code="Transport"
            ) from error
        if response.is_success:
            return response
        try:
            if stream:
                response.read()
            try:
                body: Any = response.json()
            except ValueError:
                body = None
            raise error_from_response(
                response.status_code, response.reason_phrase, body, response.text
            )
        finally:
            response.close()

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._send(method, path, **kwargs).json()

    def _pages(self, path: str, key: str, params: Mapping[str, Any]) -> Iterator[Any]:
        token: Optional[str] = None
        while True:
            page = self._json(
                "GET", path, params={**params, "pageSize": _PAGE_SIZE, "pageToken": token}
            )
            yield from page.get(key) or []
            token = page.get("nextPageToken")
            if not token:
                return

    # === experiments ===

    def create_experiment(self, spec: Spec) -> Experiment:
        """Submits an experiment: a Katib Experiment as a dict, YAML text, or the path of a
        YAML file. Its trials run on the server's machine, in the server's data directory:
        give scripts by absolute path.

        Raises:
            InvalidError: The spec is invalid; ``fields`` names every problem. Nothing was
                stored.
            ConflictError: An experiment of that name exists.
        """
        content, content_type = spec_body(spec)
        return Experiment.from_json(
            self._json("POST", "/experiments", content=content, content_type=content_type)
        )

    def get_experiment(self, name: str) -> Experiment:
        """An experiment (or study) with its Katib status."""
        return Experiment.from_json(self._json("GET", f"/experiments/{_segment(name)}"))

    def list_experiments(
        self, condition: Optional[str] = None, name: Optional[str] = None
    ) -> List[Experiment]:
        """Every experiment and study, oldest first: only those whose latest condition is
        ``condition`` (``Created``, ``Running``, ``Restarting``, ``Succeeded``, ``Failed``)
        and whose name contains ``name``, when given."""
        return [
            Experiment.from_json(item)
            for item in self._pages(
                "/experiments", "experiments", {"condition": condition, "name": name}
            )
        ]

    def wait(
        self,
        name: str,
        timeout: Optional[float] = None,
        poll: float = 1.0,
        *,
        on_progress: Optional[Callable[[Experiment], None]] = None,
    ) -> Experiment:
        """Waits until the experiment has succeeded or failed, and returns it.

        Args:
            timeout: Seconds to wait at most; ``None`` waits as long as it takes.
            poll: Seconds between two reads of its status.
            on_progress: Called with the experiment at each read.

        Raises:
            WaitTimeoutError: ``timeout`` passed first.
            ExperimentStoppedError: It was stopped on request (it will not complete until
                resumed).
        """

        def completed(experiment: Experiment) -> bool:
            if on_progress is not None:
                on_progress(experiment)
            if experiment.completed:
                return True
            if experiment.stopped:
                raise ExperimentStoppedError(
                    f"experiment {name!r} is stopped; resume it to let it complete",
                    code="Stopped",
                )
            return False

        return _wait_for(
            lambda: self.get_experiment(name),
            completed,
            lambda experiment: f"experiment {name!r} did not complete within {timeout} s "
            f"(condition {experiment.condition})",
            timeout,
            poll,
        )

    def stop(self, name: str) -> Experiment:
        """Stops a running experiment: its running trials are killed (they run again when it
        is resumed); it stays stopped across server restarts.

        Raises:
            ConflictError: It has completed, or is a study.
        """
        return Experiment.from_json(self._json("POST", f"/experiments/{_segment(name)}/stop"))

    def resume(self, name: str, max_trial_count: Optional[int] = None) -> Experiment:
        """Resumes a stopped experiment (or a completed one whose ``resumePolicy`` allows it),
        with a new ``maxTrialCount`` when given.

        Raises:
            ConflictError: It is running, is a study, or has completed and may not restart.
            InvalidError: The new budget breaks a rule.
        """
        body = {"maxTrialCount": max_trial_count} if max_trial_count is not None else {}
        return Experiment.from_json(
            self._json("POST", f"/experiments/{_segment(name)}/resume", json_body=body)
        )

    def delete(self, name: str) -> None:
        """Deletes an experiment or study, with its trials, their metrics and output."""
        self._send("DELETE", f"/experiments/{_segment(name)}")

    # === trials ===

    def trials(
        self,
        name: str,
        order_by: TrialOrder = "created",
        condition: Optional[str] = None,
        parameter: Optional[str] = None,
        descending: bool = False,
    ) -> List[Trial]:
        """Every trial of an experiment or study (all pages), in creation order, best
        objective first (``objective``) or worst first (``objectiveDescending``), or by
        ``name``, ``condition``, ``completionTime`` or the value of ``parameter``
        (``order_by="parameter"``); ``descending`` reverses the order. Trials without the
        value ordered by come last. Only those in ``condition`` when given."""
        parameters = self.get_experiment(name).parameters
        return [
            Trial.from_json(item, parameters)
            for item in self._pages(
                f"/experiments/{_segment(name)}/trials",
                "trials",
                {
                    "orderBy": order_by,
                    "condition": condition,
                    "parameter": parameter,
                    "descending": "true" if descending else None,
                },
            )
        ]

    def get_trial(self, name: str) -> Trial:
        """A trial."""
        data = self._json("GET", f"/trials/{_segment(name)}")
        parameters = self.get_experiment(str(data.get("experimentName", ""))).parameters
        return Trial.from_json(data, parameters)

    def best_trial(self, name: str) -> Optional[Trial]:
        """The experiment's best trial so far, as its status's ``currentOptimalTrial`` names
        it; ``None`` before one has succeeded."""
        experiment = self.get_experiment(name)
        status = experiment.status
        if status is None or status.current_optimal_trial is None:
            return None
        data = self._json(
            "GET", f"/trials/{_segment(status.current_optimal_trial.best_trial_name)}"
        )
        return Trial.from_json(data, experiment.parameters)

    def observations(self, trial: str, metric_name: Optional[str] = None) -> List[MetricLog]:
        """Every value reported for a trial (its observation log), oldest first; only
        ``metric_name``'s when given."""
        data = self._json(
            "GET",
            f"/trials/{_segment(trial)}/observations",
            params={"metricName": metric_name},
        )
        return [MetricLog.from_json(item) for item in data.get("metricLogs") or []]

    def report_observations(
        self,
        trial: str,
        metrics: Mapping[str, Any],
        time_stamp: Optional[datetime] = None,
    ) -> None:
        """Reports metric values of a running trial (Katib's ``ReportObservationLog``): each
        value is sent as ``str(value)``. Returns once they are stored."""
        text = _rfc3339(time_stamp or datetime.now(timezone.utc))
        body = {
            "metricLogs": [
                {"timeStamp": text, "metric": {"name": str(name), "value": str(value)}}
                for name, value in metrics.items()
            ]
        }
        self._send("POST", f"/trials/{_segment(trial)}/observations", json_body=body)

    @overload
    def logs(self, trial: str, tail: Optional[int] = None, follow: Literal[False] = False) -> str: ...

    @overload
    def logs(self, trial: str, tail: Optional[int] = None, *, follow: Literal[True]) -> LogStream: ...

    @overload
    def logs(self, trial: str, tail: Optional[int], follow: Literal[True]) -> LogStream: ...

    def logs(
        self, trial: str, tail: Optional[int] = None, follow: bool = False
    ) -> Union[str, LogStream]:
        """A trial's output (standard output and error): the whole of it, or its last
        ``tail`` lines. With ``follow=True``, a :class:`LogStream` of what it prints until it
        finishes.

        Raises:
            NotFoundError: No such trial, or it kept no output (a study's trials).
        """
        params = {"tail": tail, "follow": "true" if follow else None}
        path = f"/trials/{_segment(trial)}/log"
        if not follow:
            return self._send("GET", path, params=params, accept="text/plain").text
        response = self._send("GET", path, params=params, accept="text/plain", stream=True)
        return LogStream(response, response.iter_text())

    def events(self, experiment: Optional[str] = None) -> EventStream:
        """The server's events (only ``experiment``'s when given) as they happen: an iterator
        of :class:`~sextant.models.Event` that ends when closed or when the server shuts
        down. It is subscribed when this returns."""
        response = self._send(
            "GET",
            "/events",
            params={"experiment": experiment},
            accept="text/event-stream",
            stream=True,
        )
        return EventStream(response, parse_events(response.iter_lines()))

    def openapi(self) -> Dict[str, Any]:
        """The server's OpenAPI document."""
        document: Dict[str, Any] = self._json("GET", "/openapi.json")
        return document

    # === studies ===

    def create_study(self, spec: Spec) -> Study:
        """Creates a study: an Experiment spec without a trial template, whose trials this
        client asks for and tells the results of (see :class:`Study`).

        Raises:
            InvalidError: The spec is invalid; ``fields`` names every problem.
            ConflictError: An experiment or study of that name exists.
        """
        content, content_type = spec_body(spec)
        experiment = Experiment.from_json(
            self._json("POST", "/studies", content=content, content_type=content_type)
        )
        return Study(self, experiment.name, experiment)

    def study(self, name: str) -> Study:
        """The study ``name`` (created before, by this client or another)."""
        return Study(self, name)

    # === pipeline runs ===

    def run_pipeline(
        self,
        path_or_spec: Spec,
        params: Optional[Mapping[str, Any]] = None,
        *,
        run_id: Optional[str] = None,
        cache: Optional[bool] = None,
    ) -> Run:
        """Starts a run of a pipeline (``sextant.dev/v1beta1`` Pipeline: a dict, YAML text or
        the path of a YAML file) with ``params`` (each value sent as ``str(value)``) and
        returns it as it started. Its steps run on the server's machine, in the server's
        data directory: give scripts by absolute path.

        Args:
            run_id: The run's id (letters, digits, ``-`` and ``_``); generated when absent.
            cache: ``False`` runs every step again rather than reusing cached results.

        Raises:
            InvalidError: The pipeline, a parameter or the id is invalid; ``fields`` names
                every problem (``pipeline.spec.steps[1].command``, ``params.rows``).
                Nothing was recorded.
            ConflictError: A run of that id exists.
        """
        pipeline = spec_value(path_or_spec)
        body: Dict[str, Any] = {
            "pipeline": dict(pipeline) if isinstance(pipeline, Mapping) else pipeline,
            "params": {str(name): str(value) for name, value in (params or {}).items()},
        }
        if run_id is not None:
            body["runId"] = run_id
        if cache is not None:
            body["cache"] = cache
        return Run.from_json(self._json("POST", "/runs", json_body=body))

    def get_run(self, run_id: str) -> Run:
        """A run with the state of each of its steps."""
        return Run.from_json(self._json("GET", f"/runs/{_segment(run_id)}"))

    def list_runs(
        self, phase: Optional[str] = None, pipeline: Optional[str] = None
    ) -> List[Run]:
        """Every run, oldest first, without their steps: only those in ``phase``
        (``Pending``, ``Running``, ``Succeeded``, ``Failed``, ``Cancelled``) and of the
        pipeline named ``pipeline``, when given."""
        return [
            Run.from_json(item)
            for item in self._pages("/runs", "runs", {"phase": phase, "pipeline": pipeline})
        ]

    def wait_run(
        self, run: Union[Run, str], timeout: Optional[float] = None, poll: float = 1.0
    ) -> Run:
        """Waits until the run has succeeded, failed or been stopped (see
        :attr:`Run.finished`), and returns it with its steps.

        Raises:
            WaitTimeoutError: ``timeout`` seconds passed first (``None``: no limit).
        """
        run_id = _run_id(run)
        return _wait_for(
            lambda: self.get_run(run_id),
            lambda current: current.phase in RUN_FINAL_PHASES,
            lambda current: f"run {run_id!r} did not finish within {timeout} s "
            f"(phase {current.phase})",
            timeout,
            poll,
        )

    def stop_run(self, run: Union[Run, str]) -> None:
        """Stops a running run: its steps' processes are ended and it becomes
        ``Cancelled`` (:meth:`retry_run` resumes it). Returns once asked; the run ends soon
        after (:meth:`wait_run`).

        Raises:
            ConflictError: The run is not running.
        """
        self._send("POST", f"/runs/{_segment(_run_id(run))}/stop")

    def retry_run(self, run: Union[Run, str]) -> Run:
        """Runs a failed or stopped run again from the steps that did not succeed (those
        that did keep their results), and returns it as it restarted.

        Raises:
            ConflictError: The run is running or has succeeded.
        """
        return Run.from_json(self._json("POST", f"/runs/{_segment(_run_id(run))}/retry"))

    def step_log(
        self,
        run: Union[Run, str],
        step: str,
        item: Optional[int] = None,
        stream: LogStreamName = "stdout",
    ) -> str:
        """What a step (item ``item`` of a ``withItems`` step) printed on ``stream``.

        Raises:
            NotFoundError: No such run, step instance or log (the step has not run).
        """
        return self._send(
            "GET",
            f"/runs/{_segment(_run_id(run))}/steps/{_segment(step)}/log",
            params={"item": item, "stream": stream},
            accept="text/plain",
        ).text

    def artifacts(self, run: Union[Run, str]) -> List[Artifact]:
        """The output artifacts of the run's succeeded (and cached) steps."""
        data = self._json("GET", f"/runs/{_segment(_run_id(run))}/artifacts")
        return [Artifact.from_json(item) for item in data.get("artifacts") or []]

    def download_artifact(
        self, run: Union[Run, str], step: str, name: str, item: Optional[int] = None
    ) -> bytes:
        """The bytes of the artifact ``name`` of ``step`` (item ``item`` of a ``withItems``
        step).

        Raises:
            NotFoundError: No such run, step instance or artifact.
            ConflictError: The artifact is a directory.
        """
        path = f"/runs/{_segment(_run_id(run))}/artifacts/{_segment(step)}/{_segment(name)}"
        return self._send(
            "GET", path, params={"item": item}, accept="application/octet-stream"
        ).content

    # === recurring runs ===

    def create_recurring_run(
        self,
        name: str,
        pipeline: Spec,
        cron: str,
        params: Optional[Mapping[str, Any]] = None,
        *,
        max_concurrency: Optional[int] = None,
        no_catchup: bool = False,
        time_zone: Optional[str] = None,
        start_time: Optional[datetime] = None,
        end_time: Optional[datetime] = None,
        enabled: bool = True,
    ) -> RecurringRun:
        """Creates a recurring run: ``pipeline`` (as :meth:`run_pipeline` takes it) run with
        ``params`` whenever the cron expression ``cron`` matches (five fields, or six with
        seconds first; read in ``time_zone``), as Kubeflow Pipelines' RecurringRun.

        Args:
            max_concurrency: The most of its runs active at once, 1 to 10 (default 10);
                later firings wait.
            no_catchup: When firings were missed, start only the latest.
            time_zone: The IANA time zone ``cron`` is read in (``"Europe/Paris"``);
                UTC when ``None``.
            start_time: No firing before this time.
            end_time: No firing after this time.
            enabled: ``False`` creates it disabled (:meth:`enable_recurring_run`).

        Raises:
            InvalidError: An invalid name, pipeline, parameter, cron expression, window or
                concurrency; ``fields`` names it. Nothing was stored.
            ConflictError: A recurring run of that name exists.
        """
        value = spec_value(pipeline)
        schedule: Dict[str, Any] = {"cron": cron}
        if time_zone is not None:
            schedule["timeZone"] = time_zone
        if start_time is not None:
            schedule["startTime"] = _rfc3339(start_time)
        if end_time is not None:
            schedule["endTime"] = _rfc3339(end_time)
        body: Dict[str, Any] = {
            "name": name,
            "pipeline": dict(value) if isinstance(value, Mapping) else value,
            "params": {str(key): str(item) for key, item in (params or {}).items()},
            "schedule": schedule,
            "noCatchup": no_catchup,
            "enabled": enabled,
        }
        if max_concurrency is not None:
            body["maxConcurrency"] = max_concurrency
        return RecurringRun.from_json(self._json("POST", "/recurringruns", json_body=body))

    def get_recurring_run(self, name: str) -> RecurringRun:
        """A recurring run with its last and next firings and its runs."""
        return RecurringRun.from_json(self._json("GET", f"/recurringruns/{_segment(name)}"))

    def list_recurring_runs(self) -> List[RecurringRun]:
        """Every recurring run, by name."""
        return [
            RecurringRun.from_json(item)
            for item in self._pages("/recurringruns", "recurringRuns", {})
        ]

    def enable_recurring_run(self, name: str) -> RecurringRun:
        """Enables a recurring run: it fires from now on (firings missed while it was
        disabled are skipped)."""
        return RecurringRun.from_json(
            self._json("POST", f"/recurringruns/{_segment(name)}/enable")
        )

    def disable_recurring_run(self, name: str) -> RecurringRun:
        """Disables a recurring run: it fires no more until enabled; its runs go on."""
        return RecurringRun.from_json(
            self._json("POST", f"/recurringruns/{_segment(name)}/disable")
        )

    def delete_recurring_run(self, name: str) -> None:
        """Deletes a recurring run; the runs it started stay."""
        self._send("DELETE", f"/recurringruns/{_segment(name)}")


class Study:
    """Ask and tell: the study's algorithm suggests a trial's parameters (:meth:`ask`), the
    caller runs it and reports its result (:meth:`tell`)::

        study = client.create_study("study.yaml")
        for _ in range(30):
            trial = study.ask()
            study.tell(trial, train(**trial.params))
        print(study.best_trial())
    """

    def __init__(self, client: Client, name: str, experiment: Optional[Experiment] = None) -> None:
        self.client = client
        self.name = name
        self._experiment = experiment

    def __repr__(self) -> str:
        return f"Study({self.name!r})"

    def _spec(self) -> Experiment:
        if self._experiment is None:
            self._experiment = self.client.get_experiment(self.name)
        return self._experiment

    def experiment(self) -> Experiment:
        """The study as it stands, with its Katib status."""
        self._experiment = self.client.get_experiment(self.name)
        return self._experiment

    def ask(self) -> Trial:
        """A new Running trial with the algorithm's next parameters (:attr:`Trial.params`,
        typed by the study's parameter types).

        Raises:
            ConflictError: The study has completed, its ``maxTrialCount`` trials were all
                asked for, or its search space is exhausted (grid).
            UnavailableError: The algorithm waits for running trials to be told (Hyperband);
                ask again later.
        """
        data = self.client._json("POST", f"/studies/{_segment(self.name)}/ask")
        return Trial.from_json(data, self._spec().parameters)

    def tell(
        self,
        trial: Union[Trial, str],
        value_or_values: Union[float, Mapping[str, float], None] = None,
        state: Literal["Succeeded", "Failed"] = "Succeeded",
        message: Optional[str] = None,
    ) -> Trial:
        """Reports a trial's result: the objective's value (a number), or values by metric
        name (every objective metric, for a succeeded trial); ``state="Failed"`` for a
        trial that failed (values optional). Returns the finished trial.

        Raises:
            InvalidError: An objective value is missing.
            ConflictError: The trial was told already.
            NotFoundError: The trial is not this study's.
        """
        name = trial.name if isinstance(trial, Trial) else trial
        values: Dict[str, float]
        if value_or_values is None:
            values = {}
        elif isinstance(value_or_values, Mapping):
            values = {str(key): float(value) for key, value in value_or_values.items()}
        else:
            metrics = self._spec().objective_metric_names
            if len(metrics) != 1:
                raise ValueError(
                    f"study {self.name!r} optimizes {len(metrics)} metrics "
                    f"({', '.join(metrics)}); tell their values by name"
                )
            values = {metrics[0]: float(value_or_values)}
        body: Dict[str, Any] = {"trial": name, "values": values, "state": state}
        if message is not None:
            body["message"] = message
        data = self.client._json("POST", f"/studies/{_segment(self.name)}/tell", json_body=body)
        return Trial.from_json(data, self._spec().parameters)

    def trials(self, order_by: TrialOrder = "created") -> List[Trial]:
        """Every trial of the study."""
        return self.client.trials(self.name, order_by=order_by)

    def best_trial(self) -> Optional[Trial]:
        """The best trial so far, or ``None``."""
        return self.client.best_trial(self.name)

    def delete(self) -> None:
        """Deletes the study and its trials."""
        self.client.delete(self.name)
