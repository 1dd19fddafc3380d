"""``report_metrics``: a trial reports its metrics to the server, as with Katib's SDK.

A drop-in for ``kubeflow.katib.report_metrics`` (same signature, same errors) in a trial
whose experiment uses the ``Push`` metrics collector::

    from sextant import report_metrics          # instead of: from kubeflow.katib import ...

    report_metrics({"loss": 0.12, "accuracy": 0.97})

The trial's name is read from ``KATIB_TRIAL_NAME`` (Sextant and Katib set it in every
trial's environment). The metrics go to ``POST /api/v1/trials/{trial}/observations`` of the
server at ``db_manager_address`` when that is an ``http://`` or ``https://`` URL, else at
``$SEXTANT_URL`` (Katib's gRPC DBManager address, ``host:port``, is not an HTTP API and is
then ignored), with the bearer token ``$SEXTANT_TOKEN`` when set. Each value is sent as
``str(value)`` and must convert to a float, as Katib requires. The call returns once the
server has stored them.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

from .client import Client
from .errors import SextantError

__all__ = ["DEFAULT_TIMEOUT", "report_metrics"]

#: Seconds the report may take, as Katib's SDK's default.
DEFAULT_TIMEOUT = 120


def report_metrics(
    metrics: Dict[str, Any],
    db_manager_address: Optional[str] = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> None:
    """Pushes ``metrics`` (e.g. ``{"loss": 0.01, "accuracy": 0.99}``) to the trial's
    observation log on the server (see the module's docstring for where).

    Raises:
        ValueError: ``KATIB_TRIAL_NAME`` is not set, no server URL is known, or a value does
            not convert to a float.
        RuntimeError: The server could not be reached or refused the metrics (a
            :class:`~sextant.errors.SextantError`, which is a ``RuntimeError``).
    """
    trial = os.environ.get("KATIB_TRIAL_NAME")
    if trial is None:
        raise ValueError("The Trial name is not passed to environment variables")
    url = _server_url(db_manager_address)
    for name, value in metrics.items():
        try:
            float(value)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"metric {name!r}: {value!r} does not convert to a float"
            ) from error
    with Client(url, timeout=timeout) as client:
        try:
            client.report_observations(trial, metrics)
        except SextantError as error:
            error.message = f"Unable to push metrics for Trial {trial}: {error.message}"
            error.args = (f"Unable to push metrics for Trial {trial}: {error}",)
            raise


def _server_url(db_manager_address: Optional[str]) -> str:
    if db_manager_address and db_manager_address.startswith(("http://", "https://")):
        return db_manager_address
    url = os.environ.get("SEXTANT_URL")
    if not url:
        raise ValueError(
            "no Sextant server to report to: set SEXTANT_URL, or pass an http(s) URL as "
            f"db_manager_address (got {db_manager_address!r})"
        )
    return url
