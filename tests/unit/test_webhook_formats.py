"""Each webhook format against its seed: field set, types, codes; and retry schedules."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from tidings.api.client.render import status_body
from tidings.api.dr.render import simple_report
from tidings.api.dr.statuses import HYBER_STATUS
from tidings.errors import InvalidRequest
from tidings.messages.changes import MessageRecord
from tidings.messages.status import FINAL_STATUSES, Status
from tidings.webhooks.formats import Report, StoredDelivery, hyber, ip1, ketchup, smartswitch
from tidings.webhooks.schedules import normalize_schedule, parse_schedule
from tidings.webhooks.service import FORMATS

AT = datetime(2026, 3, 1, 12, 0, 5, 250_000, tzinfo=UTC)


def a_message(status: Status = Status.DELIVERED, **overrides: object) -> MessageRecord:
    sent = status not in {Status.ACCEPTED, Status.QUEUED, Status.SCHEDULED}
    values: dict[str, object] = {
        "id": 1234,
        "client_id": 1,
        "task_id": 77,
        "channel": "sms",
        "source": "api",
        "msisdn": "46701234567",
        "country": "SE",
        "reference": "ref-1",
        "originator": "Tidings",
        "body": "hello",
        "encoding": "gsm7",
        "parts": 2,
        "tariff": 0,
        "price": Decimal("0.082000"),
        "currency": "EUR",
        "status": status.value,
        "time_in": datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        "time_sent": datetime(2026, 3, 1, 12, 0, 1, tzinfo=UTC) if sent else None,
        "time_dr": AT if status.is_final else None,
        "expires_at": datetime(2026, 3, 4, 12, 0, tzinfo=UTC),
    }
    values.update(overrides)
    return MessageRecord(**values)


def report(status: Status = Status.DELIVERED, **overrides: object) -> Report:
    return Report(a_message(status, **overrides), status, AT)


def test_registry_names_every_format() -> None:
    assert set(FORMATS) == {"ketchup", "ip1", "hyber", "smartswitch"}
    assert all(name == fmt.name for name, fmt in FORMATS.items())


# --- Seed 004 (KetchUp) -----------------------------------------------------------------


@pytest.mark.parametrize("status", list(Status))
def test_ketchup_is_exactly_the_status_answer(status: Status) -> None:
    given = report(status)
    assert orjson.loads(ketchup.render(given)) == status_body(given.message)
    assert ketchup.FORMAT.content_type == "application/json"


def test_ketchup_fields_are_seed_004s() -> None:
    body = orjson.loads(ketchup.render(report()))
    assert set(body) == {
        "error",
        "id",
        "msisdn",
        "reference",
        "time_in",
        "time_sent",
        "time_dr",
        "status",
        "price",
        "currency",
    }
    assert body["id"] == "1234" and body["status"] == "delivered"
    assert body["time_dr"] == "2026-03-01 12:00:05" and body["price"] == "0.082"


# --- Seed 003 (iP.1) --------------------------------------------------------------------

SEED_003_EXAMPLE = {
    "messageId": "5c613848879973045cf39ac4",
    "batchId": "5c613848879973045cf39ac3",
    "recipient": "456189040623",
    "code": 102,
    "duration": 0,
    "created": "ISO-8601 string",
    "segments": 2,
    "price": 0.082,
    "currency": "eur",
    "reference": "A client reference",
}


def test_ip1_has_the_seeds_fields_and_types() -> None:
    body = orjson.loads(ip1.render(report()))
    assert set(body) == set(SEED_003_EXAMPLE)
    for name, example in SEED_003_EXAMPLE.items():
        assert type(body[name]) is type(example), name
    assert body == {
        "messageId": "1234",
        "batchId": "77",
        "recipient": "46701234567",
        "code": 201,
        "duration": 1,
        "created": "2026-03-01T12:00:05.250Z",
        "segments": 2,
        "price": 0.082,
        "currency": "eur",
        "reference": "ref-1",
    }


def test_ip1_without_task_or_reference_sends_nulls() -> None:
    body = orjson.loads(ip1.render(report(Status.SENT, task_id=None, reference=None)))
    assert body["batchId"] is None and body["reference"] is None
    assert body["code"] == 111 and body["duration"] == 0


@pytest.mark.parametrize("status", list(Status))
def test_ip1_codes_sit_in_the_published_groups(status: Status) -> None:
    body = orjson.loads(ip1.render(report(status)))
    code, final = body["code"], body["duration"]
    assert final == (1 if status in FINAL_STATUSES else 0)
    if status is Status.UNKNOWN:
        assert 500 <= code < 600 and final == 0  # an error, though a final report may follow
    elif status in FINAL_STATUSES:
        assert code // 100 in {2, 4, 5}
    else:
        assert code // 100 == 1
    assert code not in {103, 104, 203, 402}  # published codes that mean something else


def test_ip1_named_codes() -> None:
    assert {s: ip1.IP1_CODE[s] for s in (Status.QUEUED, Status.SENT)} == {
        Status.QUEUED: 102,
        Status.SENT: 111,
    }
    assert ip1.IP1_CODE[Status.DELIVERED] == 201 and ip1.IP1_CODE[Status.EXPIRED] == 202
    assert ip1.IP1_CODE[Status.REJECTED] // 100 == 4
    assert {ip1.IP1_CODE[s] // 100 for s in (Status.UNDELIVERED, Status.FAILED)} == {5}


# --- Seed 000 (Hyber) -------------------------------------------------------------------

SEED_000_EXAMPLE = {
    "phone_number": "380961111111",
    "last_partner": "sms",
    "message_id": "9f60ac8f-e721-5027-b838-e6fcb95fcd7a",
    "extra_id": "AD-6640-7006",
    "time": 1477417294667,
    "status": 2,
    "substatus": 23,
    "hyber_status": 23011,
    "total_sms_parts": 1,
    "delivered_sms_parts": 1,
}


def test_hyber_has_the_seeds_simple_report_fields() -> None:
    body = orjson.loads(hyber.render(report()))
    assert set(body) == set(SEED_000_EXAMPLE)  # no "clicks": we have no short links
    for name, example in SEED_000_EXAMPLE.items():
        assert type(body[name]) is type(example), name
    assert body == {
        "phone_number": "46701234567",
        "last_partner": "sms",
        "message_id": "1234",
        "extra_id": "ref-1",
        "time": 1772366405250,
        "status": 2,
        "substatus": 23,
        "hyber_status": 23011,
        "total_sms_parts": 2,
        "delivered_sms_parts": 2,
    }


@pytest.mark.parametrize("status", list(Status))
def test_hyber_codes_come_from_the_dr_table(status: Status) -> None:
    body = orjson.loads(hyber.render(report(status)))
    assert (body["status"], body["substatus"], body["hyber_status"]) == tuple(HYBER_STATUS[status])
    assert body["delivered_sms_parts"] == (2 if status is Status.DELIVERED else 0)


def test_hyber_last_partner_is_hyber_until_a_supplier_saw_it() -> None:
    assert orjson.loads(hyber.render(report(Status.QUEUED)))["last_partner"] == "hyber"
    never_sent = report(Status.FAILED, time_sent=None)  # no supplier could take it
    assert orjson.loads(hyber.render(never_sent))["last_partner"] == "hyber"
    assert orjson.loads(hyber.render(report(Status.SENT)))["last_partner"] == "sms"


def test_hyber_matches_the_dr_query_api() -> None:
    given = report(Status.EXPIRED)
    assert orjson.loads(hyber.render(given)) == simple_report(given.message, given.at)


# --- Seeds 001/002 (Smartswitch) --------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (Status.QUEUED, "accepted"),
        (Status.SCHEDULED, "accepted"),
        (Status.SENT, "enroute"),
        (Status.DELIVERED, "delivered"),
        (Status.EXPIRED, "expired"),
        (Status.UNDELIVERED, "undeliverable"),
        (Status.FAILED, "undeliverable"),
        (Status.REJECTED, "rejected"),
        (Status.UNKNOWN, "unknown"),
    ],
)
def test_smartswitch_states(status: Status, state: str) -> None:
    assert parse_qs(smartswitch.render(report(status))) == {
        "message_id": ["1234"],
        "message_state": [state],
    }


def test_smartswitch_request_is_the_seeds_dlr_call() -> None:
    stored = StoredDelivery(
        id=99,
        url="https://client.example/api/dlr?x=1#frag",
        content_type=smartswitch.FORMAT.content_type,
        body=smartswitch.render(report()),
        login="LOGIN",
        password="P&SS word",
    )
    outgoing = smartswitch.FORMAT.request(stored)
    assert outgoing.body == b"" and outgoing.content_type is None
    url = urlsplit(outgoing.url)
    assert (url.scheme, url.netloc, url.path, url.fragment) == (
        "https",
        "client.example",
        "/api/dlr",
        "",
    )
    assert parse_qs(url.query) == {
        "x": ["1"],
        "message_id": ["1234"],
        "message_state": ["delivered"],
        "request_id": ["99"],
        "_login": ["LOGIN"],
        "_password": ["P&SS word"],
    }


def test_smartswitch_errors_in_a_2xx_are_a_failure() -> None:
    ok = orjson.dumps({"data": {"id": "1", "type": "dlr", "attributes": {"status": "ok"}}})
    errors = orjson.dumps({"errors": [{"code": "authentication", "title": "t", "detail": "d"}]})
    assert smartswitch.succeeded(200, ok)
    assert not smartswitch.succeeded(200, errors)
    assert not smartswitch.succeeded(500, ok)
    assert smartswitch.succeeded(204, b"")  # no JSON:API body at all: taken as received


def test_json_formats_post_the_stored_body() -> None:
    stored = StoredDelivery(1, "http://x/hook", "application/json", '{"a":1}')
    for name in ("ketchup", "ip1", "hyber"):
        outgoing = FORMATS[name].request(stored)
        assert (outgoing.url, outgoing.body, outgoing.content_type) == (
            "http://x/hook",
            b'{"a":1}',
            "application/json",
        )
        assert FORMATS[name].succeeded(204, b"") and not FORMATS[name].succeeded(302, b"")


# --- Retry schedules --------------------------------------------------------------------


def test_schedule_presets() -> None:
    assert parse_schedule("ketchup") == [60, 360, 3600, 43200, 86400]
    assert parse_schedule(" IP1 ") == [600] * 10


def test_schedule_lists() -> None:
    assert parse_schedule("1, 2,3") == [1, 2, 3]
    assert normalize_schedule(" 60 , 600 ") == "60,600"
    assert normalize_schedule("Ketchup") == "ketchup"


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("", "empty"),
        ("often", "neither a preset"),
        ("60,,600", "neither a preset"),
        ("0,60", "1 to"),
        ("-5", "neither a preset"),
        ("1.5", "neither a preset"),
        ("9999999", "1 to"),
        (",".join(["1"] * 51), "at most 50"),
    ],
)
def test_bad_schedules_say_why(spec: str, why: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_schedule(spec)
    assert why in raised.value.message and raised.value.reason == "bad_retry_schedule"
