"""Console session cookies, login tokens, CSRF checks, operator password hashing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.console.auth import LoginThrottle, Signer, csrf_valid
from tidings.console.service import parse_query
from tidings.errors import AuthError, InvalidRequest
from tidings.operators.models import Operator
from tidings.operators.service import (
    check_password,
    hash_password,
    validate_name,
    validate_password,
    verify_password,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "s" * 48


def _session(signer: Signer) -> str:
    _, cookie = signer.new_session(7, "olga", "scrypt$hash", NOW + timedelta(hours=1))
    return cookie


def test_a_session_cookie_reads_back_until_it_expires() -> None:
    signer = Signer(SECRET)
    session, cookie = signer.new_session(7, "olga", "scrypt$hash", NOW + timedelta(hours=1))
    read = signer.read_session(cookie, NOW)
    assert read == session
    assert read.operator_id == 7
    assert read.password_fingerprint == signer.fingerprint("scrypt$hash")
    assert signer.read_session(cookie, NOW + timedelta(hours=1)) is None


def test_a_cookie_signed_with_another_secret_or_altered_is_refused() -> None:
    cookie = _session(Signer(SECRET))
    assert Signer("t" * 48).read_session(cookie, NOW) is None
    body, signature = cookie.split(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    assert Signer(SECRET).read_session(f"{body}.{flipped}", NOW) is None
    # Another operator's payload under this cookie's signature.
    forged = Signer(SECRET).new_session(8, "root", "x", NOW + timedelta(hours=1))[1]
    assert Signer(SECRET).read_session(f"{forged.split('.')[0]}.{signature}", NOW) is None


@given(st.text(max_size=200))
def test_any_cookie_text_is_refused_without_an_error(text: str) -> None:
    assert Signer(SECRET).read_session(text, NOW) is None
    assert not Signer(SECRET).login_token_valid(text, text, NOW)


def test_the_login_token_must_match_its_cookie_and_be_fresh() -> None:
    signer = Signer(SECRET)
    token = signer.new_login_token(NOW)
    assert signer.login_token_valid(token, token, NOW)
    assert not signer.login_token_valid(token, "forged", NOW)
    assert not signer.login_token_valid(None, token, NOW)
    assert not signer.login_token_valid(token, token, NOW + timedelta(minutes=31))
    # A session cookie is no login token (keys differ by purpose).
    cookie = _session(signer)
    assert not signer.login_token_valid(cookie, cookie, NOW)


def test_csrf_tokens_compare_exactly() -> None:
    signer = Signer(SECRET)
    session, _ = signer.new_session(1, "a", "h", NOW + timedelta(hours=1))
    assert csrf_valid(session, session.csrf)
    assert not csrf_valid(session, None)
    assert not csrf_valid(session, "")
    assert not csrf_valid(session, session.csrf + "x")
    assert not csrf_valid(session, "ünïcode")


def test_passwords_are_salted_scrypt_hashes() -> None:
    first = hash_password("correct horse battery")
    second = hash_password("correct horse battery")
    assert first != second  # a salt each
    assert first.startswith("scrypt$16384$8$1$")
    assert "correct horse" not in first
    assert verify_password("correct horse battery", first)
    assert not verify_password("correct horse batterY", first)
    assert not verify_password("x", "plain-text")
    assert not verify_password("x", "md5$1$1$1$aa$bb")


def test_check_password_refuses_unknown_names_and_wrong_passwords() -> None:
    operator = Operator(id=1, name="olga", password_hash=hash_password("correct horse"))
    assert check_password(operator, "correct horse") is operator
    with pytest.raises(AuthError):
        check_password(operator, "wrong horse")
    with pytest.raises(AuthError):
        check_password(None, "correct horse")


def test_names_and_passwords_are_checked() -> None:
    assert validate_name("olga.k@ops") == "olga.k@ops"
    for bad in ("", " olga", "-olga", "o" * 65, "ol ga"):
        with pytest.raises(InvalidRequest):
            validate_name(bad)
    with pytest.raises(InvalidRequest):
        validate_password("short")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", (None, None, None)),
        ("  42 ", (42, "42", None)),
        ("order-17", (None, "order-17", None)),
        ("+380 97 100 0001", (None, "+380 97 100 0001", "380971000001")),
        # Message ids are 64-bit (below 2**53): a phone number's digits may be one too.
        ("380971000001", (380971000001, "380971000001", "380971000001")),
        ("2147483647", (2147483647, "2147483647", "2147483647")),
        # Beyond 2**53: a reference, never an id.
        ("9007199254740992", (None, "9007199254740992", None)),
        ("٣٤", (None, "٣٤", None)),  # digits, but not ASCII ones
    ],
)
def test_a_search_is_read_every_way_it_could_match(
    query: str, expected: tuple[int | None, str | None, str | None]
) -> None:
    assert parse_query(query) == expected


def test_the_login_throttle_grows_delays_per_name_and_address() -> None:
    throttle = LoginThrottle(free=3, first_delay=timedelta(seconds=1))
    for second in range(3):
        assert throttle.blocked_until("olga", "203.0.113.7", NOW) is None
        throttle.failed("olga", "203.0.113.7", NOW + timedelta(seconds=second))
    last = NOW + timedelta(seconds=2)
    assert throttle.blocked_until("olga", "203.0.113.7", last) == last + timedelta(seconds=1)
    throttle.failed("olga", "203.0.113.7", last)
    assert throttle.blocked_until("olga", "203.0.113.7", last) == last + timedelta(seconds=2)
    # Another address, or another name, is not slowed by these failures.
    assert throttle.blocked_until("olga", "10.0.0.5", last) is None
    assert throttle.blocked_until("ivan", "203.0.113.7", last) is None
    # Capped, and forgotten an hour after the last failure.
    for _ in range(30):
        throttle.failed("olga", "203.0.113.7", last)
    assert throttle.blocked_until("olga", "203.0.113.7", last) == last + timedelta(minutes=15)
    assert throttle.blocked_until("olga", "203.0.113.7", last + timedelta(hours=1)) is None
    throttle.failed("olga", "203.0.113.7", last)
    throttle.succeeded("olga", "203.0.113.7")
    assert throttle.blocked_until("olga", "203.0.113.7", last) is None
