"""Standard Webhooks signatures (https://www.standardwebhooks.com), for senders and receivers.

Every request carries three headers:

    webhook-id         the delivery's id: the same on every retry, so receivers can dedupe
    webhook-timestamp  unix seconds when this attempt was signed
    webhook-signature  "v1,<base64 HMAC-SHA256 of f'{id}.{timestamp}.{body}'>"

keyed with the client's secret "whsec_<base64 key>". Receivers check the signature and
that the timestamp is recent (which stops replays of an old request).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import datetime

from tidings.errors import InvalidRequest

PREFIX = "whsec_"
VERSION = "v1"
KEY_BYTES = 32
# Standard Webhooks' suggested window for the timestamp, in seconds.
DEFAULT_TOLERANCE = 300


class InvalidSignature(InvalidRequest):
    reason = "bad_signature"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def _key(secret: str) -> bytes:
    encoded = secret.removeprefix(PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSignature("the webhook secret is not whsec_<base64>") from None


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body


def sign(secret: str, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The webhook-signature header value for one request."""
    signed = f"{msg_id}.{timestamp}.".encode() + _as_bytes(body)
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return f"{VERSION},{base64.b64encode(digest).decode()}"


def signature_headers(
    secret: str | None, msg_id: str, at: datetime, body: bytes | str
) -> dict[str, str]:
    """The three headers; without a secret, only id and timestamp (nothing to sign with)."""
    timestamp = int(at.timestamp())
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if secret:
        headers["webhook-signature"] = sign(secret, msg_id, timestamp, body)
    return headers


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    now: datetime,
    tolerance: int = DEFAULT_TOLERANCE,
) -> str:
    """Check a received request; returns its webhook-id, raises InvalidSignature if forged.

    `headers` is matched case-insensitively. The signature header may list several
    space-separated signatures (during a secret rotation); one matching is enough.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not msg_id or not stamp or not signatures:
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise InvalidSignature(f"webhook-timestamp {stamp!r} is not unix seconds") from None
    if abs(now.timestamp() - timestamp) > tolerance:
        raise InvalidSignature("webhook-timestamp is outside the tolerance window")
    expected = sign(secret, msg_id, timestamp, body)
    for candidate in signatures.split():
        if hmac.compare_digest(candidate.encode(), expected.encode()):
            return msg_id
    raise InvalidSignature("no webhook-signature matches")
