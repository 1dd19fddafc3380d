"""Reading a Server-Sent Events stream (the WHATWG ``text/event-stream`` format) line by
line: ``event:``, ``data:`` (several lines joined with newlines), ``id:``, comments (the
server's keep-alives) skipped, an event dispatched at each blank line. An event's ``id`` is
its own (the server numbers every event but ``lagged``), not the last one seen."""

from __future__ import annotations

import json
from typing import Any, Dict, Iterable, Iterator, List, Optional

from .models import Event


class _Pending:
    def __init__(self) -> None:
        self.type = ""
        self.data: List[str] = []
        self.id: Optional[str] = None


def parse_events(lines: Iterable[str]) -> Iterator[Event]:
    """The events of a stream's lines (without their line endings)."""
    pending = _Pending()
    for line in lines:
        line = line.rstrip("\r\n")
        if not line:
            if pending.data:
                yield _event(pending)
            pending = _Pending()
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            pending.type = value
        elif name == "data":
            pending.data.append(value)
        elif name == "id" and "\0" not in value:
            pending.id = value
        # `retry` and unknown fields are ignored, as the format says.


def _event(pending: _Pending) -> Event:
    text = "\n".join(pending.data)
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = None
    data: Dict[str, Any] = parsed if isinstance(parsed, dict) else {"raw": text}
    event_id: Optional[int]
    try:
        event_id = int(pending.id) if pending.id is not None else None
    except ValueError:
        event_id = None
    return Event(type=pending.type or "message", id=event_id, data=data)
