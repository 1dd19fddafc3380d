"""Python client of Sextant's HTTP API (``sextant server``).

::

    import sextant

    client = sextant.Client("http://127.0.0.1:8080")      # or $SEXTANT_URL, $SEXTANT_TOKEN
    experiment = client.create_experiment("branin.yaml")   # a Katib Experiment: file, text or dict
    client.wait(experiment.name, timeout=600)
    print(client.best_trial(experiment.name).params)

    study = client.create_study({...})                      # ask and tell, no trial template
    trial = study.ask()
    study.tell(trial, objective(**trial.params))

    run = client.run_pipeline("pipeline.yaml", {"rows": 100})  # a sextant.dev Pipeline
    run = client.wait_run(run, timeout=600)
    print(run.phase, client.step_log(run, "train"))

Inside a trial, :func:`report_metrics` is a drop-in for ``kubeflow.katib.report_metrics``:
it reads the trial's name from ``KATIB_TRIAL_NAME`` and posts the values (each as
``str(value)``) to ``$SEXTANT_URL`` (or ``db_manager_address``, when that is an http(s) URL).

Every failure raises a :class:`SextantError` subclass with the HTTP ``status``, the server's
``code``, its ``message``, and, for an invalid spec, ``fields``: every problem by field path.
"""

from .client import Client, EventStream, LogStream, LogStreamName, Spec, Study, TrialOrder
from .errors import (
    BadRequestError,
    ConflictError,
    ExperimentStoppedError,
    FieldProblem,
    InvalidError,
    NotFoundError,
    PayloadTooLargeError,
    ServerError,
    SextantError,
    TransportError,
    UnauthorizedError,
    UnavailableError,
    UnsupportedMediaTypeError,
    WaitTimeoutError,
)
from .models import (
    Artifact,
    Condition,
    CronSchedule,
    Event,
    Experiment,
    ExperimentStatus,
    MetricLog,
    MetricSummary,
    OptimalTrial,
    ParamValue,
    RecurringRun,
    Run,
    StepState,
    Trial,
)
from .report import report_metrics

__version__ = "0.1.0"

__all__ = [
    "Artifact",
    "BadRequestError",
    "Client",
    "Condition",
    "ConflictError",
    "CronSchedule",
    "Event",
    "EventStream",
    "Experiment",
    "ExperimentStatus",
    "ExperimentStoppedError",
    "FieldProblem",
    "InvalidError",
    "LogStream",
    "LogStreamName",
    "MetricLog",
    "MetricSummary",
    "NotFoundError",
    "OptimalTrial",
    "ParamValue",
    "PayloadTooLargeError",
    "RecurringRun",
    "Run",
    "ServerError",
    "SextantError",
    "Spec",
    "StepState",
    "Study",
    "TransportError",
    "Trial",
    "TrialOrder",
    "UnauthorizedError",
    "UnavailableError",
    "UnsupportedMediaTypeError",
    "WaitTimeoutError",
    "report_metrics",
]
