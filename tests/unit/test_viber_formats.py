"""Viber statuses through every API's table: the four webhook formats, the machine itself."""

from __future__ import annotations

from urllib.parse import parse_qs

import orjson
import pytest

from tests.unit.test_webhook_formats import AT, a_message
from tidings.api.client.statuses import SEED_004_STATUS
from tidings.api.dr.statuses import HYBER_STATUS
from tidings.messages.status import FINAL_STATUSES, Status, can_transition
from tidings.webhooks.formats import Report, hyber, ip1, ketchup, smartswitch

VIBER_STATUSES = (
    Status.SENT,
    Status.DELIVERED,
    Status.READ,
    Status.EXPIRED,
    Status.UNDELIVERED,
    Status.NOT_VIBER_USER,
)


def viber_report(status: Status) -> Report:
    message = a_message(status, channel="viber", task_id=None, parts=1, encoding="utf-8")
    return Report(message, status, AT)


def fallback_report(status: Status) -> Report:
    message = a_message(status, id=1300, parent_id=1234, reference=None, task_id=None)
    return Report(message, status, AT)


def test_read_follows_delivered_and_nothing_follows_read() -> None:
    assert Status.READ in FINAL_STATUSES and Status.NOT_VIBER_USER in FINAL_STATUSES
    assert can_transition(Status.SENT, Status.READ)
    assert can_transition(Status.DELIVERED, Status.READ)
    assert not can_transition(Status.READ, Status.DELIVERED)
    assert not can_transition(Status.READ, Status.READ)
    assert not can_transition(Status.NOT_VIBER_USER, Status.READ)
    assert not can_transition(Status.EXPIRED, Status.DELIVERED)
    assert not can_transition(Status.NOT_VIBER_USER, Status.UNDELIVERED)


def test_seed_004_words_for_viber() -> None:
    assert SEED_004_STATUS[Status.READ] == "read"
    assert SEED_004_STATUS[Status.NOT_VIBER_USER] == "not-viber-user"


@pytest.mark.parametrize("status", VIBER_STATUSES)
def test_ketchup_renders_viber_statuses_as_the_viber_status_endpoint(status: Status) -> None:
    body = orjson.loads(ketchup.render(viber_report(status)))
    assert body["status"] == SEED_004_STATUS[status]
    assert body["message_type"] == "viber"
    assert "viber_id" not in body


@pytest.mark.parametrize("status", VIBER_STATUSES)
def test_hyber_names_the_viber_channel(status: Status) -> None:
    body = orjson.loads(hyber.render(viber_report(status)))
    assert body["last_partner"] == "viber"
    assert "total_sms_parts" not in body
    code = HYBER_STATUS[status]
    if status is Status.DELIVERED:
        assert (body["status"], body["hyber_status"]) == (2, 23043)
    else:
        assert (body["status"], body["substatus"], body["hyber_status"]) == tuple(code)


def test_hyber_reports_a_fallback_sms_under_its_viber_message() -> None:
    body = orjson.loads(hyber.render(fallback_report(Status.DELIVERED)))
    assert (body["message_id"], body["last_partner"], body["hyber_status"]) == (
        "1234",
        "sms",
        23011,
    )
    assert body["delivered_sms_parts"] == 2


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (Status.SENT, 111),
        (Status.DELIVERED, 201),
        (Status.READ, 205),
        (Status.EXPIRED, 202),
        (Status.UNDELIVERED, 501),
        (Status.NOT_VIBER_USER, 504),
    ],
)
def test_ip1_codes_for_viber(status: Status, code: int) -> None:
    body = orjson.loads(ip1.render(viber_report(status)))
    assert (body["code"], body["channel"]) == (code, "viber")
    assert body["duration"] == (1 if status.is_final else 0)


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (Status.SENT, "enroute"),
        (Status.DELIVERED, "delivered"),
        (Status.READ, "delivered"),
        (Status.EXPIRED, "expired"),
        (Status.UNDELIVERED, "undeliverable"),
        (Status.NOT_VIBER_USER, "undeliverable"),
    ],
)
def test_smartswitch_states_for_viber(status: Status, state: str) -> None:
    query = parse_qs(smartswitch.render(viber_report(status)))
    assert query == {"message_id": ["1234"], "message_state": [state], "channel": ["viber"]}


def test_every_format_names_the_viber_message_of_a_fallback_sms() -> None:
    ketchup_body = orjson.loads(ketchup.render(fallback_report(Status.DELIVERED)))
    assert (ketchup_body["message_type"], ketchup_body["viber_id"]) == ("sms", "1234")
    ip1_body = orjson.loads(ip1.render(fallback_report(Status.DELIVERED)))
    assert (ip1_body["channel"], ip1_body["parentMessageId"]) == ("sms", "1234")
    query = parse_qs(smartswitch.render(fallback_report(Status.DELIVERED)))
    assert query["parent_message_id"] == ["1234"] and query["message_id"] == ["1300"]


def test_plain_sms_bodies_do_not_change() -> None:
    sms = Report(a_message(Status.DELIVERED), Status.DELIVERED, AT)
    assert "message_type" not in orjson.loads(ketchup.render(sms))
    assert "channel" not in orjson.loads(ip1.render(sms))
    assert "channel" not in parse_qs(smartswitch.render(sms))
