"""Turning `POST /api/mo` arguments into one inbound message, or one error per bad argument.

Arguments are (name, value) pairs from the query string and the body together, as for
`/api/dlr`. Nothing here touches the database.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from tidings.api.dlr.parsing import INVALID, MISSING, ArgumentsRejected, Problem, values
from tidings.connectors.base import InboundMo

MAX_ADDRESS = 32
MAX_TEXT = 10_000
MAX_ID_LENGTH = 100
_ADDRESS = re.compile(r"^\+?[0-9A-Za-z][0-9A-Za-z .\-]{0,31}$")
_FIELDS = ("sender", "recipient", "text", "received_at", "supplier_message_id")


def parse_mo(pairs: Sequence[tuple[str, str]], now: datetime) -> InboundMo:
    """The message the arguments describe; raises ArgumentsRejected listing every bad one.

    Each field may be given once (or repeated with the same value). `received_at` is ISO
    8601 or `YYYY-MM-DD HH:MM:SS` (UTC unless it says otherwise), default now; a time in
    the future is taken as now (a supplier's clock running ahead).
    """
    problems: list[Problem] = []
    found: dict[str, str | None] = {}
    for name in _FIELDS:
        given = set(values(pairs, name))
        if len(given) > 1:
            problems.append(Problem(INVALID, name, f"{name} is given with different values"))
            found[name] = None
        else:
            found[name] = given.pop() if given else None
    for name in ("sender", "recipient"):
        value = found[name]
        if value is None or not value.strip():
            problems.append(Problem(MISSING, name, f"{name} is required"))
        elif not _ADDRESS.fullmatch(value.strip()):
            problems.append(
                Problem(INVALID, name, f"{name} must be a number or an alphanumeric address")
            )
    text = found["text"]
    if text is None:
        problems.append(Problem(MISSING, "text", "text is required"))
    elif len(text) > MAX_TEXT or "\x00" in text:
        problems.append(
            Problem(INVALID, "text", f"text must be at most {MAX_TEXT} characters, no NUL")
        )
    reference = found["supplier_message_id"]
    if reference is not None and (
        not reference.strip() or len(reference) > MAX_ID_LENGTH or "\x00" in reference
    ):
        problems.append(
            Problem(
                INVALID,
                "supplier_message_id",
                f"supplier_message_id must be 1 to {MAX_ID_LENGTH} characters",
            )
        )
    received_at = now
    if found["received_at"] is not None:
        parsed = _time(found["received_at"])
        if parsed is None:
            problems.append(Problem(INVALID, "received_at", "received_at must be an ISO 8601 time"))
        else:
            received_at = min(parsed, now)
    if problems:
        raise ArgumentsRejected(problems)
    assert found["sender"] is not None and found["recipient"] is not None and text is not None
    return InboundMo(
        sender=found["sender"].strip(),
        recipient=found["recipient"].strip(),
        text=text,
        received_at=received_at,
        supplier_message_id=reference.strip() if reference is not None else None,
    )


def _time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # not a time; a time past year 9999 in UTC
        return None
