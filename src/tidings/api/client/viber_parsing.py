"""Seed 004's Viber field rules, turning a `/viber/create` body into a ViberRequest.

Every rule raises InvalidRequest with a `reason` that errors.VIBER_CODES maps onto the
seed's Viber codes (40-51). The SMS alternative (`options.sms`) is Tidings' own field,
documented in docs/viber.md; its faults are "invalid options" (49).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tidings.api.client.parsing import (
    REFERENCE,
    REFERENCE_RULE,
    parse_callback_url,
    parse_datetime,
    parse_int,
    parse_originator,
)
from tidings.errors import InvalidRequest, TidingsError
from tidings.viber.acceptance import (
    DEFAULT_SMS_VALIDITY_SECONDS,
    DEFAULT_TTL_SECONDS,
    Recipient,
    SmsAlternative,
    ViberItem,
    ViberRequest,
)
from tidings.viber.service import MAX_ALPHA_NAME

# The seed's own example ids ("example_12") have an underscore, which SMS references may not.
EXTERNAL_ID = REFERENCE  # the same rule as every reference (api/client/parsing.py)
MAX_TEXT = 1000  # Viber's limit for a business message's text
MAX_CAPTION = 30  # Viber's limit for a button's text
MAX_URL = 2000
MIN_TTL, MAX_TTL = 15, 86_400
MIN_SMS_VALIDITY, MAX_SMS_VALIDITY = 60, 72 * 3600


def _bad(what: str, reason: str) -> InvalidRequest:
    return InvalidRequest(what, reason=reason)


def parse_viber_request(payload: Any, now: datetime) -> ViberRequest:
    if not isinstance(payload, dict):
        raise _bad("the body must be a JSON object", "bad_payload")
    ttl = parse_int(
        payload.get("validity"),
        name="validity",
        low=MIN_TTL,
        high=MAX_TTL,
        reason="bad_validity",
        default=DEFAULT_TTL_SECONDS,
    )
    tariff = parse_int(payload.get("tariff"), name="tariff", low=0, high=9, reason="bad_tariff")
    messages = payload.get("messages")
    if messages is None:
        raise _bad("messages is missing", "missing")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages must be a non-empty array", "bad_payload")
    items = [_parse_item(entry, index, now) for index, entry in enumerate(messages)]
    return ViberRequest(messages=items, tariff=tariff, ttl_seconds=ttl or DEFAULT_TTL_SECONDS)


def _parse_item(entry: Any, index: int, now: datetime) -> ViberItem:
    where = f"messages[{index}]"
    if not isinstance(entry, dict):
        raise _bad(f"{where} must be an object", "bad_payload")
    recipients = _parse_recipients(entry.get("to"), where)
    text = entry.get("text")
    if not isinstance(text, str) or not text.strip() or "\x00" in text:
        raise _bad(f"{where}: text is empty", "bad_text")
    if len(text) > MAX_TEXT:
        raise _bad(f"{where}: text is longer than {MAX_TEXT} characters", "bad_text")
    alpha_name = entry.get("alpha_name")
    if (
        not isinstance(alpha_name, str)
        or not alpha_name.strip()
        or len(alpha_name) > MAX_ALPHA_NAME
        or not alpha_name.isprintable()
    ):
        raise _bad(
            f"{where}: alpha_name is missing or not a registered sender", "sender_not_registered"
        )
    promotional = entry.get("is_promotional", False)
    if promotional is None:
        promotional = False
    if not isinstance(promotional, bool):
        raise _bad(f"{where}: is_promotional must be true or false", "bad_payload")
    img, caption, action, sms = _parse_options(entry.get("options"), where)
    # The seed's Viber example names it scheduledDatetime; its SMS requests, send_time. Both
    # schedule a Viber message as they do an SMS (docs/api.md, "Viber send_time").
    field = "scheduledDatetime" if entry.get("scheduledDatetime") is not None else "send_time"
    send_at = parse_datetime(entry.get(field), name=field, now=now)
    return ViberItem(
        recipients=recipients,
        text=text,
        alpha_name=alpha_name.strip(),
        callback_url=parse_callback_url(entry.get("callback_url")),
        is_promotional=promotional,
        img=img,
        caption=caption,
        action=action,
        send_at=send_at,
        sms=sms,
    )


def _parse_recipients(value: Any, where: str) -> list[Recipient]:
    if value is None:
        raise _bad(f"{where}: to is missing", "missing")
    if not isinstance(value, list) or not value:
        raise _bad(f"{where}: to must be a non-empty array", "bad_payload")
    recipients = []
    for to, entry in enumerate(value):
        at = f"{where}.to[{to}]"
        if not isinstance(entry, dict):
            raise _bad(f"{at} must be an object", "bad_payload")
        # The seed's text names the field "phone", its example "msisdn": both are read.
        msisdn = entry.get("msisdn", entry.get("phone"))
        if isinstance(msisdn, int) and not isinstance(msisdn, bool):
            msisdn = str(msisdn)
        if not isinstance(msisdn, str) or not msisdn:
            raise _bad(f"{at}: msisdn is missing", "bad_msisdn")
        external_id = entry.get("external_id")
        if isinstance(external_id, int) and not isinstance(external_id, bool):
            external_id = str(external_id)
        if external_id == "":
            external_id = None
        if external_id is not None and (
            not isinstance(external_id, str) or not EXTERNAL_ID.fullmatch(external_id)
        ):
            raise _bad(f"{at}: external_id must be {REFERENCE_RULE}", "bad_reference")
        recipients.append(Recipient(msisdn=msisdn, external_id=external_id))
    return recipients


def _url(value: Any, name: str, where: str) -> str | None:
    if value is None or value == "":
        return None
    if (
        not isinstance(value, str)
        or not value.startswith(("http://", "https://"))
        or len(value) > MAX_URL
        or not value.isprintable()
        or " " in value
    ):
        raise _bad(f"{where}: options.viber.{name} must be an http(s) URL", "bad_options")
    return value


def _parse_options(
    value: Any, where: str
) -> tuple[str | None, str | None, str | None, SmsAlternative | None]:
    if value is None:
        return None, None, None, None
    if not isinstance(value, dict):
        raise _bad(f"{where}: options must be an object", "bad_options")
    viber = value.get("viber")
    img = caption = action = None
    if viber is not None:
        if not isinstance(viber, dict):
            raise _bad(f"{where}: options.viber must be an object", "bad_options")
        img = _url(viber.get("img"), "img", where)
        action = _url(viber.get("action"), "action", where)
        caption = viber.get("caption")
        if caption == "":
            caption = None
        if caption is not None and (
            not isinstance(caption, str) or len(caption) > MAX_CAPTION or not caption.isprintable()
        ):
            raise _bad(
                f"{where}: options.viber.caption must be text up to {MAX_CAPTION} characters",
                "bad_options",
            )
        if (caption is None) != (action is None):
            raise _bad(
                f"{where}: a button needs both options.viber.caption and options.viber.action",
                "bad_options",
            )
    return img, caption, action, _parse_sms(value.get("sms"), where)


def _parse_sms(value: Any, where: str) -> SmsAlternative | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _bad(f"{where}: options.sms must be an object", "bad_options")
    text = value.get("text")
    if not isinstance(text, str) or not text.strip() or "\x00" in text:
        raise _bad(f"{where}: options.sms.text is empty", "bad_options")
    try:
        originator = parse_originator(value.get("originator"), None)
        validity = parse_int(
            value.get("validity"),
            name="options.sms.validity",
            low=MIN_SMS_VALIDITY,
            high=MAX_SMS_VALIDITY,
            reason="bad_options",
            default=DEFAULT_SMS_VALIDITY_SECONDS,
        )
    except TidingsError as error:
        raise _bad(f"{where}: options.sms: {error.message}", "bad_options") from None
    return SmsAlternative(
        text=text, originator=originator, validity_seconds=validity or DEFAULT_SMS_VALIDITY_SECONDS
    )
