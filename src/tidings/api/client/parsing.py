"""Seed 004's field rules, turning a request body into the internal SmsRequest.

Every rule raises InvalidRequest with a `reason` that errors.py maps onto Appendix 1.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tidings.db.ids import MAX_ROW_ID, parse_id
from tidings.errors import InvalidRequest
from tidings.messages.acceptance import SmsItem, SmsRequest

# A client's reference (SMS `reference`, Viber `external_id`, HLR `reference`; seed 000's
# `extra_id`): what real references hold — letters, digits and - _ . : / — up to 32
# characters, seed 004's length. Seed 000's own example, AD-6640-7006, is one (docs/api.md).
REFERENCE = re.compile(r"[A-Za-z0-9_.:/\-]{1,32}")
REFERENCE_RULE = "1 to 32 of a-z, A-Z, 0-9 and - _ . : /"
WHOLE_NUMBER = re.compile(r"-?[0-9]{1,9}")
MAX_ORIGINATOR = 14
MAX_SCHEDULE_AHEAD = timedelta(days=30)
DESTINATIONS = ("phone", "phones", "individual")


def _where(index: int | None, what: str) -> str:
    return what if index is None else f"phones[{index}]: {what}"


def parse_int(
    value: Any, *, name: str, low: int, high: int, reason: str, default: int | None = None
) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool):
        raise InvalidRequest(f"{name} must be a whole number", reason=reason, field=name)
    if isinstance(value, str) and WHOLE_NUMBER.fullmatch(value.strip()):
        value = int(value.strip())
    if not isinstance(value, int):
        raise InvalidRequest(f"{name} must be a whole number", reason=reason, field=name)
    if not low <= value <= high:
        raise InvalidRequest(f"{name} must be {low} to {high}", reason=reason, field=name)
    return value


def parse_datetime(value: Any, *, name: str, now: datetime) -> datetime | None:
    """ISO 8601; a time without an offset is UTC. Past times mean "now"."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{name} must be an ISO 8601 string", reason="bad_send_time")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(
            f"{name} {value!r} is not an ISO 8601 date", reason="bad_send_time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 with an offset
        raise InvalidRequest(f"{name} {value!r} is out of range", reason="bad_send_time") from None
    if moment > now + MAX_SCHEDULE_AHEAD:
        raise InvalidRequest(
            f"{name} is more than {MAX_SCHEDULE_AHEAD.days} days ahead", reason="bad_send_time"
        )
    return moment


def parse_msisdn_field(value: Any, index: int | None) -> str:
    if value is None or value == "":
        raise InvalidRequest(_where(index, "msisdn is missing"), reason="bad_msisdn")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRequest(_where(index, "msisdn must be a string"), reason="bad_msisdn")
    return str(value)


def parse_reference(value: Any, index: int | None) -> str:
    if value is None or value == "":
        raise InvalidRequest(_where(index, "reference is missing"), reason="missing_reference")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not REFERENCE.fullmatch(value):
        raise InvalidRequest(
            _where(index, f"reference must be {REFERENCE_RULE}"), reason="bad_reference"
        )
    return value


def parse_originator(value: Any, index: int | None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(_where(index, "originator is missing"), reason="bad_originator")
    if len(value) > MAX_ORIGINATOR:
        raise InvalidRequest(
            _where(index, f"originator is longer than {MAX_ORIGINATOR} characters"),
            reason="bad_originator",
        )
    if not value.isprintable():  # also keeps NUL out, which PostgreSQL text refuses
        raise InvalidRequest(
            _where(index, "originator has unprintable characters"), reason="bad_originator"
        )
    return value


def parse_reply_to(value: Any, index: int | None) -> int | None:
    """`reply_to`: the id of an inbound message this SMS answers (docs/inbound.md)."""
    if value is None or value == "":
        return None
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    # Inbound messages have 32-bit ids: a larger one names none (and PostgreSQL would refuse
    # it as a parameter).
    if not isinstance(text, str) or parse_id(text, MAX_ROW_ID) is None:
        raise InvalidRequest(
            _where(index, "reply_to must be an inbound message id"),
            reason="invalid",
            field="reply_to",
        )
    return int(text)


def _or_reply(
    parse: Callable[[Any, int | None], str], value: Any, index: int | None, reply_to: int | None
) -> str:
    """A field a reply may leave out (its inbound message supplies it): "" until then."""
    if reply_to is not None and (value is None or value == ""):
        return ""
    return parse(value, index)


def parse_body(value: Any, index: int | None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(_where(index, "body is empty"), reason="bad_body")
    if "\x00" in value:  # PostgreSQL text cannot hold NUL, and no handset shows it
        raise InvalidRequest(_where(index, "body contains NUL"), reason="bad_body")
    return value


def parse_callback_url(value: Any) -> str | None:
    """An unusable callback_url is ignored, as the seed says, falling back to the client's."""
    if (
        isinstance(value, str)
        and value.startswith(("http://", "https://"))
        and len(value) <= 2000
        and value.isprintable()
        and " " not in value
    ):
        return value
    return None


def parse_sms_request(payload: Any, now: datetime) -> SmsRequest:
    if not isinstance(payload, dict):
        raise InvalidRequest("the body must be a JSON object", reason="bad_payload")
    destination = payload.get("destination")
    if destination is None:
        raise InvalidRequest("destination is missing", reason="missing")
    if destination in ("addressbook", "addresbook"):  # the seed spells it both ways
        raise InvalidRequest("destination addressbook is not supported", reason="unsupported")
    if destination not in DESTINATIONS:
        raise InvalidRequest(
            f"destination must be one of {', '.join(DESTINATIONS)}", reason="bad_payload"
        )
    validity = parse_int(
        payload.get("validity"), name="validity", low=1, high=72, reason="bad_validity", default=72
    )
    tariff = parse_int(payload.get("tariff"), name="tariff", low=0, high=9, reason="bad_tariff")
    send_time_field = "send_time" if payload.get("send_time") is not None else "scheduledDatetime"
    send_at = parse_datetime(payload.get(send_time_field), name=send_time_field, now=now)
    callback_url = parse_callback_url(payload.get("callback_url"))

    if destination == "phone":
        reply_to = parse_reply_to(payload.get("reply_to"), None)
        items = [
            SmsItem(
                msisdn=_or_reply(parse_msisdn_field, payload.get("msisdn"), None, reply_to),
                reference=parse_reference(payload.get("reference"), None),
                originator=_or_reply(parse_originator, payload.get("originator"), None, reply_to),
                body=parse_body(payload.get("body"), None),
                reply_to=reply_to,
            )
        ]
    else:
        phones = payload.get("phones")
        if phones is None:
            raise InvalidRequest("phones is missing", reason="missing")
        if not isinstance(phones, list) or not phones:
            raise InvalidRequest("phones must be a non-empty array", reason="bad_payload")
        if any(not isinstance(entry, dict) for entry in phones):
            index = next(i for i, e in enumerate(phones) if not isinstance(e, dict))
            raise InvalidRequest(f"phones[{index}] must be an object", reason="bad_payload")
        replies = [parse_reply_to(entry.get("reply_to"), i) for i, entry in enumerate(phones)]
        if destination == "phones":
            # Replies take their originator from their inbound message: none is needed then.
            every_reply = all(r is not None for r in replies)
            originator = _or_reply(
                parse_originator, payload.get("originator"), None, 0 if every_reply else None
            )
            body = parse_body(payload.get("body"), None)
        items = []
        for index, entry in enumerate(phones):
            reply_to = replies[index]
            if destination == "individual":
                originator = _or_reply(parse_originator, entry.get("originator"), index, reply_to)
                body = parse_body(entry.get("body"), index)
            items.append(
                SmsItem(
                    msisdn=_or_reply(parse_msisdn_field, entry.get("msisdn"), index, reply_to),
                    reference=parse_reference(entry.get("reference"), index),
                    originator=originator,
                    body=body,
                    reply_to=reply_to,
                )
            )
    return SmsRequest(
        destination=destination,
        items=items,
        tariff=tariff,
        validity_hours=validity or 72,
        send_at=send_at,
        callback_url=callback_url,
    )
