"""Standard Webhooks signing: round trip, tampering, replay window, secret format."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from tidings.webhooks.signing import (
    InvalidSignature,
    new_secret,
    sign,
    signature_headers,
    verify,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BODY = '{"status":"delivered"}'


def test_round_trip() -> None:
    secret = new_secret()
    headers = signature_headers(secret, "42", NOW, BODY)
    assert headers["webhook-id"] == "42"
    assert headers["webhook-timestamp"] == str(int(NOW.timestamp()))
    assert headers["webhook-signature"].startswith("v1,")
    assert verify(secret, headers, BODY.encode(), now=NOW + timedelta(seconds=3)) == "42"


def test_matches_the_standard_webhooks_construction() -> None:
    """Computed by hand as the spec describes, so any Standard Webhooks library agrees."""
    key = bytes(range(32))
    secret = "whsec_" + base64.b64encode(key).decode()
    expected = base64.b64encode(
        hmac.new(key, f"msg_1.1700000000.{BODY}".encode(), hashlib.sha256).digest()
    ).decode()
    assert sign(secret, "msg_1", 1700000000, BODY) == f"v1,{expected}"


def test_secret_format() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    assert new_secret() != secret


@pytest.mark.parametrize(
    "tamper",
    [
        lambda h, b: (h, b.replace(b"delivered", b"expired")),
        lambda h, b: ({**h, "webhook-id": "43"}, b),
        lambda h, b: ({**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) + 1)}, b),
        lambda h, b: ({**h, "webhook-signature": "v1," + "A" * 44}, b),
        lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b),
    ],
)
def test_tampering_is_detected(tamper: object) -> None:
    assert callable(tamper)
    secret = new_secret()
    headers, body = tamper(signature_headers(secret, "42", NOW, BODY), BODY.encode())
    with pytest.raises(InvalidSignature):
        verify(secret, headers, body, now=NOW)


def test_another_secret_fails() -> None:
    headers = signature_headers(new_secret(), "42", NOW, BODY)
    with pytest.raises(InvalidSignature):
        verify(new_secret(), headers, BODY, now=NOW)


def test_old_and_future_timestamps_are_refused() -> None:
    secret = new_secret()
    headers = signature_headers(secret, "42", NOW, BODY)
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify(secret, headers, BODY, now=NOW + timedelta(minutes=6))
    with pytest.raises(InvalidSignature, match="tolerance"):
        verify(secret, headers, BODY, now=NOW - timedelta(minutes=6))
    assert verify(secret, headers, BODY, now=NOW + timedelta(minutes=6), tolerance=600) == "42"


def test_any_of_several_signatures_and_any_header_case() -> None:
    old, new = new_secret(), new_secret()
    headers = signature_headers(new, "42", NOW, BODY)
    rotated = {
        "Webhook-Id": headers["webhook-id"],
        "Webhook-Timestamp": headers["webhook-timestamp"],
        "Webhook-Signature": f"{sign(old, '42', int(NOW.timestamp()), BODY)} "
        + headers["webhook-signature"],
    }
    assert verify(new, rotated, BODY, now=NOW) == "42"
    assert verify(old, rotated, BODY, now=NOW) == "42"


def test_without_a_secret_nothing_is_signed() -> None:
    assert set(signature_headers(None, "42", NOW, BODY)) == {"webhook-id", "webhook-timestamp"}


def test_a_malformed_secret_is_an_error() -> None:
    with pytest.raises(InvalidSignature):
        sign("whsec_not base64!", "1", 1, BODY)
