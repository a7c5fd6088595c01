"""Turning /api/dlr arguments into triples, or into one error per bad argument.

Arguments arrive as (name, value) pairs from the query string and the body together, query
first; repeated names keep their order. The n-th `message_id`, the n-th `message_state` and
the n-th `request_id` form triple n. Nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tidings.api.dlr.states import MESSAGE_STATE
from tidings.messages.status import Status

MAX_TRIPLES = 1000
MAX_ID_LENGTH = 100  # what a receipt stores of a supplier's message id
MAX_REQUEST_ID_LENGTH = 100

MISSING = "missing_argument"
INVALID = "invalid_argument"


@dataclass(frozen=True, slots=True)
class Problem:
    """One bad argument: its JSON:API error code, the parameter, and its position if any."""

    code: str
    parameter: str
    detail: str
    position: int | None = None


class ArgumentsRejected(Exception):
    """The request is refused whole; `problems` holds one entry per bad argument."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(p.detail for p in problems))
        self.problems = list(problems)


@dataclass(frozen=True, slots=True)
class Triple:
    message_id: str
    message_state: str
    status: Status
    request_id: str | None


@dataclass(frozen=True, slots=True)
class Login:
    login: str
    password: str


def values(pairs: Iterable[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in pairs if key == name]


def credentials(pairs: Sequence[tuple[str, str]]) -> Login | None:
    """`_login` and `_password`, each given once (or repeated with the same value)."""
    logins = set(values(pairs, "_login"))
    passwords = set(values(pairs, "_password"))
    if len(logins) != 1 or len(passwords) != 1:
        return None
    login, password = logins.pop(), passwords.pop()
    if "\x00" in login or "\x00" in password:  # no stored login has one (PostgreSQL text can't)
        return None
    return Login(login, password) if login and password else None


def parse_triples(pairs: Sequence[tuple[str, str]]) -> list[Triple]:
    """The request's triples in order; raises ArgumentsRejected listing every bad one."""
    ids = values(pairs, "message_id")
    states = values(pairs, "message_state")
    request_ids = values(pairs, "request_id")
    problems: list[Problem] = []
    if not ids:
        problems.append(Problem(MISSING, "message_id", "message_id is required"))
    if not states:
        problems.append(Problem(MISSING, "message_state", "message_state is required"))
    if problems:
        raise ArgumentsRejected(problems)
    if len(ids) > MAX_TRIPLES:
        raise ArgumentsRejected(
            [
                Problem(
                    INVALID,
                    "message_id",
                    f"{len(ids)} message_id values exceed the maximum of {MAX_TRIPLES}",
                )
            ]
        )
    if len(states) != len(ids):
        problems.append(
            Problem(
                INVALID,
                "message_state",
                f"{len(states)} message_state values for {len(ids)} message_id values",
            )
        )
    if request_ids and len(request_ids) != len(ids):
        problems.append(
            Problem(
                INVALID,
                "request_id",
                f"{len(request_ids)} request_id values for {len(ids)} message_id values; "
                "give none, or one per message_id (empty for none)",
            )
        )
    if problems:
        raise ArgumentsRejected(problems)

    triples: list[Triple] = []
    for position, (raw_id, raw_state) in enumerate(zip(ids, states, strict=True)):
        message_id = raw_id.strip()
        state = raw_state.strip().lower()
        request_id = request_ids[position] if request_ids else ""
        if not message_id:
            problems.append(Problem(INVALID, "message_id", "message_id is empty", position))
        elif "\x00" in message_id:  # PostgreSQL text cannot hold NUL, and no supplier id has it
            problems.append(Problem(INVALID, "message_id", "message_id contains NUL", position))
        elif len(message_id) > MAX_ID_LENGTH:
            problems.append(
                Problem(
                    INVALID,
                    "message_id",
                    f"message_id is longer than {MAX_ID_LENGTH} characters",
                    position,
                )
            )
        status = MESSAGE_STATE.get(state)
        if status is None:
            problems.append(
                Problem(
                    INVALID,
                    "message_state",
                    f"message_state {raw_state!r} is not one of {', '.join(MESSAGE_STATE)}",
                    position,
                )
            )
        if "\x00" in request_id:
            problems.append(Problem(INVALID, "request_id", "request_id contains NUL", position))
        elif len(request_id) > MAX_REQUEST_ID_LENGTH:
            problems.append(
                Problem(
                    INVALID,
                    "request_id",
                    f"request_id is longer than {MAX_REQUEST_ID_LENGTH} characters",
                    position,
                )
            )
        if status is not None:
            triples.append(Triple(message_id, state, status, request_id or None))
    if problems:
        raise ArgumentsRejected(problems)
    return triples


def pairs_from_json(document: Any) -> list[tuple[str, str]]:
    """A JSON body: an object whose values are strings, integers, or arrays of them.

    Inside an array, null stands for "no value at this position" (an empty string), so
    that request_id can be left out for some triples.
    """
    if not isinstance(document, dict):
        raise ArgumentsRejected([Problem(INVALID, "body", "the JSON body must be an object")])
    pairs: list[tuple[str, str]] = []
    problems: list[Problem] = []
    for name, value in document.items():
        if value is None:
            continue
        items = value if isinstance(value, list) else [value]
        for position, item in enumerate(items):
            text = _scalar(item)
            if text is None:
                problems.append(
                    Problem(
                        INVALID,
                        str(name),
                        f"{name} must be a string or an integer",
                        position if isinstance(value, list) else None,
                    )
                )
            else:
                pairs.append((str(name), text))
    if problems:
        raise ArgumentsRejected(problems)
    return pairs


def _scalar(item: Any) -> str | None:
    if item is None:
        return ""
    if isinstance(item, bool):
        return None
    if isinstance(item, str | int):
        return str(item)
    return None
