"""Seed 004's HLR request fields, turned into an `HlrRequest`.

Two forms, as the seed has them, each as a multipart form (the seed insists on it), a
url-encoded form, or a JSON body:

* single: the fields `msisdn`, `reference`, optional `tariff` and `callback_url`;
* bulk: a `payload` field holding a JSON array of such objects (a JSON body may also be the
  array itself, or an object with `payload`).

Every rule raises InvalidRequest with a `reason` that `errors.HLR_CODES` maps onto 60-66.
In a bulk request any invalid item rejects the whole request (nothing is created), and a
missing `msisdn` is error 64 "Incorrect payload", as in the seed's example.
"""

from __future__ import annotations

from typing import Any

import orjson

from tidings.api.client.parsing import REFERENCE, REFERENCE_RULE, parse_callback_url, parse_int
from tidings.errors import InvalidRequest
from tidings.hlr.service import HlrItem, HlrRequest


def parse_hlr_request(payload: Any) -> HlrRequest:
    if isinstance(payload, dict) and "payload" in payload:
        payload = payload["payload"]
        if isinstance(payload, str):
            try:
                payload = orjson.loads(payload)
            except orjson.JSONDecodeError:
                raise InvalidRequest("payload is not JSON", reason="bad_payload") from None
        if not isinstance(payload, list):
            raise InvalidRequest("payload must be a JSON array", reason="bad_payload")
    if isinstance(payload, list):
        if not payload:
            raise InvalidRequest("payload is an empty array", reason="bad_payload")
        return HlrRequest(
            items=[_item(entry, index) for index, entry in enumerate(payload)], is_batch=True
        )
    if isinstance(payload, dict):
        return HlrRequest(items=[_item(payload, None)], is_batch=False)
    raise InvalidRequest("the body must be an object or an array", reason="bad_payload")


def _where(index: int | None, what: str) -> str:
    return what if index is None else f"payload[{index}]: {what}"


def _item(entry: Any, index: int | None) -> HlrItem:
    if not isinstance(entry, dict):
        raise InvalidRequest(_where(index, "must be an object"), reason="bad_payload")
    msisdn = entry.get("msisdn")
    if msisdn is None or msisdn == "":
        raise InvalidRequest(
            _where(index, "missing msisdn"),
            reason="missing" if index is None else "bad_payload",
            field="msisdn",
        )
    if isinstance(msisdn, bool) or not isinstance(msisdn, str | int):
        raise InvalidRequest(_where(index, "msisdn must be a string"), reason="bad_msisdn")
    reference = entry.get("reference")
    if reference is None or reference == "":
        raise InvalidRequest(_where(index, "missing reference"), reason="missing_reference")
    if isinstance(reference, int) and not isinstance(reference, bool):
        reference = str(reference)
    if not isinstance(reference, str) or not REFERENCE.fullmatch(reference):
        raise InvalidRequest(
            _where(index, f"reference must be {REFERENCE_RULE}"), reason="bad_reference"
        )
    given = entry.get("tariff")
    tariff = parse_int(
        None if given == "" else given, name="tariff", low=0, high=9, reason="bad_tariff"
    )
    return HlrItem(
        msisdn=str(msisdn),
        reference=reference,
        tariff=tariff,
        callback_url=parse_callback_url(entry.get("callback_url")),
    )
