"""The errors the client raises: one class per kind of failure the server reports, all
subclasses of :class:`SextantError`.

The server answers every failed request with
``{"error": {"code", "message", "fields": [{"path", "rule"}]}}``; the exception carries the
HTTP status, the code, the message and, for an invalid spec (422), every problem by field
path, e.g. ``spec.parameters[0].feasibleSpace: min 5 > max 1``.

:class:`SextantError` is a :class:`RuntimeError`, as the Katib SDK's ``report_metrics``
raises one when it cannot push metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Type

__all__ = [
    "BadRequestError",
    "ConflictError",
    "ExperimentStoppedError",
    "FieldProblem",
    "InvalidError",
    "NotFoundError",
    "PayloadTooLargeError",
    "ServerError",
    "SextantError",
    "TransportError",
    "UnauthorizedError",
    "UnavailableError",
    "UnsupportedMediaTypeError",
    "WaitTimeoutError",
]


@dataclass(frozen=True)
class FieldProblem:
    """One problem of a spec or request: the field path and the rule it breaks."""

    path: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}: {self.rule}"


class SextantError(RuntimeError):
    """A request the server refused or could not answer, or that never reached it.

    Attributes:
        status: The HTTP status, or ``None`` when no response came (see
            :class:`TransportError`) or the failure is the client's own (a wait that timed out).
        code: The server's machine-readable code (``Invalid``, ``NotFound``, ``Conflict``,
            ``BadRequest``, ``UnsupportedMediaType``, ``PayloadTooLarge``, ``Unauthorized``,
            ``Unavailable``, ``Internal``), or the client's (``Transport``, ``Timeout``,
            ``Stopped``).
        message: For people.
        fields: With ``Invalid``: each problem by field path.
    """

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        code: str = "",
        fields: Optional[List[FieldProblem]] = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.fields: List[FieldProblem] = list(fields or [])
        super().__init__(self._describe())

    def _describe(self) -> str:
        head = f"{self.status} {self.code}: " if self.status is not None else ""
        text = head + self.message
        if self.fields:
            text += "".join(f"\n  {problem}" for problem in self.fields)
        return text

    @property
    def paths(self) -> List[str]:
        """The field paths of :attr:`fields`."""
        return [problem.path for problem in self.fields]


class BadRequestError(SextantError):
    """400: the body is not UTF-8 YAML or JSON, or is empty."""


class UnauthorizedError(SextantError):
    """401: the server needs ``Authorization: Bearer <token>`` (``token=`` or
    ``SEXTANT_TOKEN``) and the request carried none or another."""


class NotFoundError(SextantError):
    """404: no experiment, study, trial, run or recurring run of that name (or no output log
    of a trial or step, or no such artifact)."""


class ConflictError(SextantError):
    """409: the name exists already, or the resource is not in a state that allows the
    request (stopping a finished experiment, telling a trial twice, asking a completed
    study)."""


class PayloadTooLargeError(SextantError):
    """413: the body is larger than the server accepts."""


class UnsupportedMediaTypeError(SextantError):
    """415: the body's content type is not one the route reads."""


class InvalidError(SextantError):
    """422: the spec or request breaks the schema or the rules; :attr:`fields` names every
    problem by field path. Nothing was stored."""


class UnavailableError(SextantError):
    """503: the algorithm cannot answer now (Hyperband waits for running trials to be told);
    ask again later."""


class ServerError(SextantError):
    """5xx: the server failed."""


class TransportError(SextantError):
    """The request never got an answer: the server is down, unreachable, or too slow."""


class WaitTimeoutError(SextantError, TimeoutError):
    """:meth:`sextant.Client.wait` ran out of time before the experiment completed, or
    :meth:`sextant.Client.wait_run` before the run finished."""


class ExperimentStoppedError(SextantError):
    """:meth:`sextant.Client.wait` found the experiment stopped on request: it will not
    complete until it is resumed."""


_BY_STATUS: Dict[int, Type[SextantError]] = {
    400: BadRequestError,
    401: UnauthorizedError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    422: InvalidError,
    503: UnavailableError,
}


def error_from_response(status: int, reason: str, body: Any, text: str) -> SextantError:
    """The exception for a failed response: ``body`` is its parsed JSON (or ``None``),
    ``text`` its raw text for when it is not the server's error body (a proxy's page)."""
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else SextantError)
    detail = body.get("error") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        code = str(detail.get("code", "")) or reason
        message = str(detail.get("message", "")) or reason
        raw_fields = detail.get("fields") or []
        fields = [
            FieldProblem(path=str(item.get("path", "")), rule=str(item.get("rule", "")))
            for item in raw_fields
            if isinstance(item, dict)
        ]
        return cls(message, status=status, code=code, fields=fields)
    message = text.strip() or reason or "request failed"
    return cls(message[:2000], status=status, code=reason)
