"""What the client returns: experiments with their Katib status, trials, metric logs,
events, pipeline runs with their steps' states, artifacts and recurring runs, as frozen
dataclasses read from the server's JSON (Katib's camelCase names become
snake_case attributes; the original JSON is kept in ``raw`` where there is more to it).

Parameter values come back from the server as strings, as Katib writes them;
:attr:`Trial.params` has them converted by the experiment's parameter types: ``int`` to
:class:`int`, ``double`` to :class:`float`, ``discrete`` to :class:`int` or :class:`float`
(by its list), ``categorical`` left a :class:`str`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Mapping, Optional, Union

__all__ = [
    "Artifact",
    "Condition",
    "CronSchedule",
    "Event",
    "Experiment",
    "ExperimentStatus",
    "MetricLog",
    "MetricSummary",
    "OptimalTrial",
    "ParamValue",
    "RecurringRun",
    "Run",
    "StepState",
    "Trial",
]

#: A parameter's value, converted by its type.
ParamValue = Union[int, float, str]

#: Conditions after which an experiment runs no more trials (unless resumed with a larger
#: budget).
COMPLETED_CONDITIONS = ("Succeeded", "Failed")

#: Phases after which a run does no more (a failed or stopped one until it is retried).
RUN_FINAL_PHASES = ("Succeeded", "Failed", "Cancelled")

#: The annotation the server puts on an experiment stopped on request.
STOPPED_ANNOTATION = "sextant.dev/stopped"

_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(Z|z|[+-]\d{2}:?\d{2})?$"
)


def parse_time(text: Any) -> Optional[datetime]:
    """An RFC 3339 time (any number of fractional digits, ``Z`` or an offset) as an aware
    :class:`datetime`; ``None`` for ``None`` or an empty string."""
    if not text:
        return None
    match = _TIME.match(str(text))
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    tz = timezone.utc
    if zone and zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    return datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tzinfo=tz
    )


def convert_value(value: str, parameter: Optional[Mapping[str, Any]]) -> ParamValue:
    """``value`` converted by the Katib parameter spec ``parameter`` (``parameterType`` and
    ``feasibleSpace``); left a string when the type is categorical, unknown, or the value
    does not parse."""
    if parameter is None:
        return value
    kind = parameter.get("parameterType")
    try:
        if kind == "int":
            try:
                return int(value)
            except ValueError:
                number = float(value)
                return int(number) if number.is_integer() else number
        if kind == "double":
            return float(value)
        if kind == "discrete":
            space = parameter.get("feasibleSpace") or {}
            choices = [str(choice) for choice in space.get("list") or []]
            if choices and all(_is_int(choice) for choice in choices) and _is_int(value):
                return int(value)
            number = float(value)
            return number if math.isfinite(number) else value
    except ValueError:
        return value
    return value


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def _optional_int(value: Any) -> Optional[int]:
    return int(value) if value is not None else None


def _optional_str(value: Any) -> Optional[str]:
    return str(value) if value is not None else None


def _strings(value: Any) -> Dict[str, str]:
    return {_str(k): _str(v) for k, v in (value or {}).items()}


@dataclass(frozen=True)
class Condition:
    """One of Katib's conditions of an experiment."""

    #: ``Created``, ``Running``, ``Restarting``, ``Succeeded`` or ``Failed``.
    type: str
    #: ``"True"``, ``"False"`` or ``"Unknown"``.
    status: str
    reason: str
    message: str
    last_update_time: Optional[datetime] = None
    last_transition_time: Optional[datetime] = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Condition:
        return cls(
            type=_str(data.get("type")),
            status=_str(data.get("status")),
            reason=_str(data.get("reason")),
            message=_str(data.get("message")),
            last_update_time=parse_time(data.get("lastUpdateTime")),
            last_transition_time=parse_time(data.get("lastTransitionTime")),
        )


@dataclass(frozen=True)
class MetricSummary:
    """A metric of a trial's observation: Katib's min, max and latest, as strings (a number,
    or ``unavailable``)."""

    name: str
    min: str
    max: str
    latest: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MetricSummary:
        return cls(
            name=_str(data.get("name")),
            min=_str(data.get("min")),
            max=_str(data.get("max")),
            latest=_str(data.get("latest")),
        )


@dataclass(frozen=True)
class OptimalTrial:
    """The best trial so far, as Katib's ``status.currentOptimalTrial`` says."""

    best_trial_name: str
    #: The best trial's parameter values, as strings.
    parameter_assignments: Dict[str, str]
    observation: List[MetricSummary]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Optional[OptimalTrial]:
        name = _str(data.get("bestTrialName"))
        if not name:
            return None
        observation = data.get("observation") or {}
        return cls(
            best_trial_name=name,
            parameter_assignments={
                _str(item.get("name")): _str(item.get("value"))
                for item in data.get("parameterAssignments") or []
            },
            observation=[MetricSummary.from_json(m) for m in observation.get("metrics") or []],
        )


@dataclass(frozen=True)
class ExperimentStatus:
    """Katib's status of an experiment."""

    conditions: List[Condition]
    #: ``None`` until a trial has succeeded with the objective metric.
    current_optimal_trial: Optional[OptimalTrial]
    start_time: Optional[datetime]
    completion_time: Optional[datetime]
    trials: int
    trials_pending: int
    trials_running: int
    trials_succeeded: int
    trials_failed: int
    trials_killed: int
    trials_early_stopped: int
    trials_metrics_unavailable: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExperimentStatus:
        return cls(
            conditions=[Condition.from_json(c) for c in data.get("conditions") or []],
            current_optimal_trial=OptimalTrial.from_json(data.get("currentOptimalTrial") or {}),
            start_time=parse_time(data.get("startTime")),
            completion_time=parse_time(data.get("completionTime")),
            trials=_int(data.get("trials")),
            trials_pending=_int(data.get("trialsPending")),
            trials_running=_int(data.get("trialsRunning")),
            trials_succeeded=_int(data.get("trialsSucceeded")),
            trials_failed=_int(data.get("trialsFailed")),
            trials_killed=_int(data.get("trialsKilled")),
            trials_early_stopped=_int(data.get("trialsEarlyStopped")),
            trials_metrics_unavailable=_int(data.get("trialsMetricsUnavailable")),
        )

    @property
    def condition(self) -> Optional[str]:
        """The latest true condition's type (the experiment's state), as Katib reads it."""
        for condition in reversed(self.conditions):
            if condition.status == "True":
                return condition.type
        return None


@dataclass(frozen=True)
class Experiment:
    """A Katib Experiment (or a study) with its status."""

    name: str
    metadata: Dict[str, Any]
    spec: Dict[str, Any]
    #: ``None`` until the server has computed it.
    status: Optional[ExperimentStatus]
    #: The JSON as the server sent it.
    raw: Dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Experiment:
        metadata = dict(data.get("metadata") or {})
        status = data.get("status")
        return cls(
            name=_str(metadata.get("name")),
            metadata=metadata,
            spec=dict(data.get("spec") or {}),
            status=ExperimentStatus.from_json(status) if isinstance(status, dict) else None,
            raw=dict(data),
        )

    @property
    def condition(self) -> Optional[str]:
        """The latest true condition (``Created``, ``Running``, ``Restarting``,
        ``Succeeded``, ``Failed``), or ``None`` before the first."""
        return self.status.condition if self.status is not None else None

    @property
    def succeeded(self) -> bool:
        return self.condition == "Succeeded"

    @property
    def failed(self) -> bool:
        return self.condition == "Failed"

    @property
    def completed(self) -> bool:
        """Succeeded or failed."""
        return self.condition in COMPLETED_CONDITIONS

    @property
    def stopped(self) -> bool:
        """Stopped on request (and not resumed since)."""
        annotations = self.metadata.get("annotations") or {}
        return STOPPED_ANNOTATION in annotations

    @property
    def is_study(self) -> bool:
        """A study (ask and tell): it has no trial template; its client runs the trials."""
        return not self.spec.get("trialTemplate")

    @property
    def parameters(self) -> Dict[str, Dict[str, Any]]:
        """The parameter specs (``parameterType``, ``feasibleSpace``) by name."""
        return {
            _str(parameter.get("name")): dict(parameter)
            for parameter in self.spec.get("parameters") or []
        }

    @property
    def objective_metric_names(self) -> List[str]:
        """The optimized metrics, the primary one first."""
        objective = self.spec.get("objective") or {}
        objectives = objective.get("objectives") or []
        if objectives:
            return [_str(item.get("metricName")) for item in objectives]
        name = _str(objective.get("objectiveMetricName"))
        return [name] if name else []


@dataclass(frozen=True)
class Trial:
    """A trial of an experiment or study."""

    name: str
    experiment_name: str
    #: Parameter values converted by the experiment's parameter types (see the module's
    #: docstring).
    params: Dict[str, ParamValue]
    #: Parameter values as the server wrote them (strings).
    parameter_assignments: Dict[str, str]
    labels: Dict[str, str]
    #: Katib's latest condition: ``Created``, ``Running``, ``Succeeded``, ``Failed``,
    #: ``Killed``, ``EarlyStopped``, ``MetricsUnavailable``.
    condition: str
    reason: str
    message: str
    #: The metrics observed, once the trial has finished.
    observation: List[MetricSummary]
    #: The objective metric's value by its strategy, once known.
    objective_value: Optional[float]
    created_at: Optional[datetime]
    start_time: Optional[datetime]
    completion_time: Optional[datetime]
    raw: Dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(
        cls,
        data: Mapping[str, Any],
        parameters: Optional[Mapping[str, Mapping[str, Any]]] = None,
    ) -> Trial:
        """Reads a trial; ``parameters`` (the experiment's parameter specs by name) give
        :attr:`params` their types."""
        assignments = {
            _str(item.get("name")): _str(item.get("value"))
            for item in data.get("parameterAssignments") or []
        }
        specs = parameters or {}
        objective = data.get("objectiveValue")
        return cls(
            name=_str(data.get("name")),
            experiment_name=_str(data.get("experimentName")),
            params={name: convert_value(value, specs.get(name)) for name, value in assignments.items()},
            parameter_assignments=assignments,
            labels=_strings(data.get("labels")),
            condition=_str(data.get("condition")),
            reason=_str(data.get("reason")),
            message=_str(data.get("message")),
            observation=[MetricSummary.from_json(m) for m in data.get("observation") or []],
            objective_value=float(objective) if objective is not None else None,
            created_at=parse_time(data.get("createdAt")),
            start_time=parse_time(data.get("startTime")),
            completion_time=parse_time(data.get("completionTime")),
            raw=dict(data),
        )

    def metric(self, name: str) -> Optional[MetricSummary]:
        """The observed metric ``name``, if any."""
        for metric in self.observation:
            if metric.name == name:
                return metric
        return None


@dataclass(frozen=True)
class MetricLog:
    """One reported value of a trial's metric (Katib's observation log)."""

    time_stamp: Optional[datetime]
    name: str
    #: As reported: a number, or ``unavailable``.
    value: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MetricLog:
        metric = data.get("metric") or {}
        return cls(
            time_stamp=parse_time(data.get("timeStamp")),
            name=_str(metric.get("name")),
            value=_str(metric.get("value")),
        )


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event of ``GET /events``.

    ``type`` is ``experiment`` (``data``: ``name``, ``condition``, ``trials``,
    ``trialsRunning``, ``trialsSucceeded``, ``trialsFailed``, ``trialsEarlyStopped``,
    ``bestTrial``, ``stopped``), ``trial`` (``experiment``, ``name``, ``condition``),
    ``experimentDeleted`` (``name``) or ``lagged`` (``missed``: events this client fell too
    far behind to receive; read the current state from the API).
    """

    type: str
    #: The event's sequence number (none on ``lagged``).
    id: Optional[int]
    data: Dict[str, Any]

    @property
    def experiment(self) -> Optional[str]:
        """The experiment (or study) the event is about."""
        key = "experiment" if self.type == "trial" else "name"
        value = self.data.get(key)
        return value if isinstance(value, str) else None

    @property
    def condition(self) -> Optional[str]:
        """The experiment's or trial's condition, on ``experiment`` and ``trial`` events."""
        value = self.data.get("condition")
        return value if isinstance(value, str) else None


def instance_name(step: str, item_index: Optional[int]) -> str:
    """A step instance's name: the step, with ``[i]`` for item ``i`` of a ``withItems``
    step."""
    return step if item_index is None else f"{step}[{item_index}]"


@dataclass(frozen=True)
class StepState:
    """The latest state of a step instance of a pipeline run."""

    step: str
    #: The ``withItems`` index of a fanned-out step.
    item_index: Optional[int]
    #: ``Pending``, ``Running``, ``Succeeded``, ``Cached``, ``Failed``, ``Skipped`` or
    #: ``Cancelled``.
    phase: str
    #: The attempt in progress or last made.
    attempt: int
    #: Whether its result came from the cache.
    cached: bool
    #: Its output parameters.
    output_params: Dict[str, str]
    #: The names of its output artifacts.
    output_artifacts: List[str]
    #: Why it failed or was skipped, or where a cached result came from.
    message: Optional[str]
    started_at: Optional[datetime]
    finished_at: Optional[datetime]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StepState:
        return cls(
            step=_str(data.get("step")),
            item_index=_optional_int(data.get("itemIndex")),
            phase=_str(data.get("phase")),
            attempt=_int(data.get("attempt")),
            cached=bool(data.get("cached")),
            output_params=_strings(data.get("outputParams")),
            output_artifacts=[_str(name) for name in data.get("outputArtifacts") or []],
            message=_optional_str(data.get("message")),
            started_at=parse_time(data.get("startedAt")),
            finished_at=parse_time(data.get("finishedAt")),
        )

    @property
    def instance(self) -> str:
        """``step``, or ``step[i]`` for item ``i``."""
        return instance_name(self.step, self.item_index)


@dataclass(frozen=True)
class Run:
    """A pipeline run with the latest state of each step instance."""

    run_id: str
    #: The pipeline's ``metadata.name``.
    pipeline_name: str
    #: The resolved parameter values.
    params: Dict[str, str]
    #: ``Pending``, ``Running``, ``Succeeded``, ``Failed`` or ``Cancelled``.
    phase: str
    #: Whether cached step results may be reused.
    cache_enabled: bool
    created_at: Optional[datetime]
    started_at: Optional[datetime]
    finished_at: Optional[datetime]
    #: Why it ended as it did.
    message: Optional[str]
    #: Its step instances in the order first recorded (empty in lists, which omit them).
    steps: List[StepState]
    raw: Dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Run:
        return cls(
            run_id=_str(data.get("runId")),
            pipeline_name=_str(data.get("pipelineName")),
            params=_strings(data.get("params")),
            phase=_str(data.get("phase")),
            cache_enabled=bool(data.get("cacheEnabled")),
            created_at=parse_time(data.get("createdAt")),
            started_at=parse_time(data.get("startedAt")),
            finished_at=parse_time(data.get("finishedAt")),
            message=_optional_str(data.get("message")),
            steps=[StepState.from_json(step) for step in data.get("steps") or []],
            raw=dict(data),
        )

    @property
    def finished(self) -> bool:
        """Succeeded, failed or stopped: it does no more unless retried."""
        return self.phase in RUN_FINAL_PHASES

    @property
    def succeeded(self) -> bool:
        return self.phase == "Succeeded"

    def step(self, name: str, item: Optional[int] = None) -> Optional[StepState]:
        """The state of step ``name`` (item ``item`` of a ``withItems`` step), if recorded."""
        for state in self.steps:
            if state.step == name and state.item_index == item:
                return state
        return None


@dataclass(frozen=True)
class Artifact:
    """An output artifact of a run's step."""

    step: str
    #: The ``withItems`` index of a fanned-out step.
    item_index: Optional[int]
    name: str
    #: Its size in bytes (a file), or ``None`` (a directory).
    size: Optional[int]
    raw: Dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Artifact:
        return cls(
            step=_str(data.get("step")),
            item_index=_optional_int(data.get("itemIndex")),
            name=_str(data.get("name")),
            size=_optional_int(data.get("size")),
            raw=dict(data),
        )


@dataclass(frozen=True)
class CronSchedule:
    """When a recurring run fires: a cron expression of five fields (minute hour
    day-of-month month day-of-week) or six (seconds first), read in a time zone (UTC unless
    given), within an optional window."""

    cron: str
    #: The IANA time zone the expression is read in; ``None`` for UTC.
    time_zone: Optional[str] = None
    #: No firing before this time.
    start_time: Optional[datetime] = None
    #: No firing after this time.
    end_time: Optional[datetime] = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CronSchedule:
        return cls(
            cron=_str(data.get("cron")),
            time_zone=_optional_str(data.get("timeZone")),
            start_time=parse_time(data.get("startTime")),
            end_time=parse_time(data.get("endTime")),
        )


@dataclass(frozen=True)
class RecurringRun:
    """A pipeline on a cron schedule (Kubeflow Pipelines' RecurringRun), each firing a run
    named ``<name>-<YYYYMMDDhhmmss>`` of its scheduled time."""

    name: str
    #: The pipeline's ``metadata.name``.
    pipeline_name: str
    #: Parameter values for every run.
    params: Dict[str, str]
    schedule: CronSchedule
    #: The most of its runs active at once.
    max_concurrency: int
    #: Whether missed firings are skipped but the latest.
    no_catchup: bool
    #: Whether it fires.
    enabled: bool
    created_at: Optional[datetime]
    #: The scheduled time of the last firing started.
    last_fired: Optional[datetime]
    #: The next scheduled time, if enabled and before the end time.
    next_firing: Optional[datetime]
    #: The ids of its runs, oldest first.
    runs: List[str]
    #: How many of them are pending or running.
    active_runs: int
    raw: Dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecurringRun:
        return cls(
            name=_str(data.get("name")),
            pipeline_name=_str(data.get("pipelineName")),
            params=_strings(data.get("params")),
            schedule=CronSchedule.from_json(data.get("schedule") or {}),
            max_concurrency=_int(data.get("maxConcurrency")),
            no_catchup=bool(data.get("noCatchup")),
            enabled=bool(data.get("enabled")),
            created_at=parse_time(data.get("createdAt")),
            last_fired=parse_time(data.get("lastFired")),
            next_firing=parse_time(data.get("nextFiring")),
            runs=[_str(run) for run in data.get("runs") or []],
            active_runs=_int(data.get("activeRuns")),
            raw=dict(data),
        )
