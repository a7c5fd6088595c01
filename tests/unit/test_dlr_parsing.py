"""Reading /api/dlr arguments into triples, and refusing bad ones with one error each."""

from __future__ import annotations

import pytest

from tidings.api.dlr.parsing import (
    MAX_TRIPLES,
    ArgumentsRejected,
    Login,
    Problem,
    Triple,
    credentials,
    pairs_from_json,
    parse_triples,
)
from tidings.api.dlr.states import MESSAGE_STATE
from tidings.messages.status import Status


def rejected(pairs: list[tuple[str, str]]) -> list[Problem]:
    with pytest.raises(ArgumentsRejected) as caught:
        parse_triples(pairs)
    return caught.value.problems


def test_every_seed_state_has_one_status() -> None:
    assert MESSAGE_STATE == {
        "enroute": Status.SENT,
        "accepted": Status.SENT,
        "unknown": Status.UNKNOWN,
        "delivered": Status.DELIVERED,
        "expired": Status.EXPIRED,
        "undeliverable": Status.UNDELIVERED,
        "rejected": Status.REJECTED,
    }


def test_one_triple() -> None:
    pairs = [("message_id", "1561370632513"), ("message_state", "delivered"), ("request_id", "1")]
    assert parse_triples(pairs) == [Triple("1561370632513", "delivered", Status.DELIVERED, "1")]


def test_triples_pair_by_position_even_when_interleaved_differently() -> None:
    pairs = [
        ("message_id", "a"),
        ("message_id", "b"),
        ("message_state", "expired"),
        ("message_state", "ENROUTE"),
    ]
    assert parse_triples(pairs) == [
        Triple("a", "expired", Status.EXPIRED, None),
        Triple("b", "enroute", Status.SENT, None),
    ]


def test_empty_request_id_means_none_for_that_position() -> None:
    pairs = [
        ("message_id", "a"),
        ("message_state", "delivered"),
        ("request_id", ""),
        ("message_id", "b"),
        ("message_state", "delivered"),
        ("request_id", "r2"),
    ]
    assert [t.request_id for t in parse_triples(pairs)] == [None, "r2"]


def test_missing_arguments() -> None:
    assert rejected([]) == [
        Problem("missing_argument", "message_id", "message_id is required"),
        Problem("missing_argument", "message_state", "message_state is required"),
    ]
    [problem] = rejected([("message_id", "a")])
    assert (problem.code, problem.parameter) == ("missing_argument", "message_state")


def test_count_mismatches() -> None:
    problems = rejected(
        [
            ("message_id", "a"),
            ("message_id", "b"),
            ("message_state", "delivered"),
            ("request_id", "1"),
        ]
    )
    assert [(p.code, p.parameter, p.position) for p in problems] == [
        ("invalid_argument", "message_state", None),
        ("invalid_argument", "request_id", None),
    ]


def test_one_problem_per_bad_argument_with_its_position() -> None:
    pairs = [
        ("message_id", "a"),
        ("message_state", "delivered"),
        ("message_id", " "),
        ("message_state", "read"),
        ("message_id", "c"),
        ("message_state", "expired"),
        ("message_id", "x" * 101),
        ("message_state", "delivered"),
    ]
    assert [(p.parameter, p.position) for p in rejected(pairs)] == [
        ("message_id", 1),
        ("message_state", 1),
        ("message_id", 3),
    ]


def test_too_many_triples() -> None:
    pairs = [("message_id", str(i)) for i in range(MAX_TRIPLES + 1)]
    pairs += [("message_state", "delivered")] * (MAX_TRIPLES + 1)
    [problem] = rejected(pairs)
    assert problem.parameter == "message_id" and "maximum" in problem.detail


def test_too_long_request_id() -> None:
    pairs = [("message_id", "a"), ("message_state", "delivered"), ("request_id", "r" * 101)]
    [problem] = rejected(pairs)
    assert (problem.parameter, problem.position) == ("request_id", 0)


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([("_login", "L"), ("_password", "P")], Login("L", "P")),
        ([("_login", "L"), ("_password", "P"), ("_login", "L")], Login("L", "P")),
        ([("_login", "L")], None),
        ([("_login", ""), ("_password", "P")], None),
        ([("_login", "L"), ("_login", "M"), ("_password", "P")], None),
    ],
)
def test_credentials(pairs: list[tuple[str, str]], expected: Login | None) -> None:
    assert credentials(pairs) == expected


def test_json_object_becomes_pairs() -> None:
    document = {
        "_login": "L",
        "message_id": [1561370632513, "b"],
        "message_state": ["delivered", "expired"],
        "request_id": ["1", None],
        "ignored": None,
    }
    assert pairs_from_json(document) == [
        ("_login", "L"),
        ("message_id", "1561370632513"),
        ("message_id", "b"),
        ("message_state", "delivered"),
        ("message_state", "expired"),
        ("request_id", "1"),
        ("request_id", ""),
    ]


@pytest.mark.parametrize(
    ("document", "parameter", "position"),
    [
        ([{"message_id": "a"}], "body", None),
        ({"message_id": 1.5}, "message_id", None),
        ({"message_id": ["a", True]}, "message_id", 1),
        ({"message_state": {"x": 1}}, "message_state", None),
    ],
)
def test_json_values_that_are_refused(
    document: object, parameter: str, position: int | None
) -> None:
    with pytest.raises(ArgumentsRejected) as caught:
        pairs_from_json(document)
    [problem] = caught.value.problems
    assert (problem.code, problem.parameter, problem.position) == (
        "invalid_argument",
        parameter,
        position,
    )
