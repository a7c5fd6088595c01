"""The /viber/create field rules (seed 004 Viber section and docs/viber.md), without a database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.api.client.errors import VIBER_CODES, code_for
from tidings.api.client.viber_parsing import parse_viber_request
from tidings.connectors.viber.simulator import has_viber
from tidings.errors import TidingsError

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def item(**changes: Any) -> dict[str, Any]:
    return {"to": [{"msisdn": "380972000001"}], "text": "hi", "alpha_name": "Shop", **changes}


def code_of(payload: Any) -> int:
    with pytest.raises(TidingsError) as raised:
        parse_viber_request(payload, NOW)
    return code_for(raised.value, VIBER_CODES)


def test_defaults() -> None:
    request = parse_viber_request({"messages": [item()]}, NOW)
    assert request.ttl_seconds == 86_400 and request.tariff is None
    [message] = request.messages
    assert (message.is_promotional, message.img, message.sms, message.send_at) == (
        False,
        None,
        None,
        None,
    )


def test_phone_is_read_where_msisdn_is_missing() -> None:
    """The seed's text calls the field `phone`, its example `msisdn`."""
    request = parse_viber_request({"messages": [item(to=[{"phone": 380972000001}])]}, NOW)
    assert request.messages[0].recipients[0].msisdn == "380972000001"


def test_sms_alternative() -> None:
    sms = {"text": "Hello over SMS", "originator": "Shop"}
    request = parse_viber_request({"messages": [item(options={"sms": sms})]}, NOW)
    alternative = request.messages[0].sms
    assert alternative is not None
    assert (alternative.text, alternative.originator, alternative.validity_seconds) == (
        "Hello over SMS",
        "Shop",
        259_200,
    )
    assert code_of({"messages": [item(options={"sms": {**sms, "validity": 59}})]}) == 49
    assert code_of({"messages": [item(options={"sms": {**sms, "originator": "x" * 15}})]}) == 49
    assert code_of({"messages": [item(options={"sms": {**sms, "text": ""}})]}) == 49


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ([], 44),
        ({}, 2),
        ({"messages": []}, 44),
        ({"messages": [item(to=[])]}, 44),
        ({"messages": [item(text=None)]}, 46),
        ({"messages": [item(alpha_name=None)]}, 45),
        ({"messages": [item()], "validity": 15.5}, 48),
        ({"messages": [item()], "validity": True}, 48),
        ({"messages": [item(options={"viber": {"action": "https://x.example"}})]}, 49),
        ({"messages": [item(options={"viber": "x"})]}, 49),
        ({"messages": [item(to=[{"msisdn": "380972000001", "external_id": "a" * 33}])]}, 47),
    ],
)
def test_rules(payload: Any, code: int) -> None:
    assert code_of(payload) == code


@given(st.integers())
def test_validity_is_15_to_86400_seconds(validity: int) -> None:
    payload = {"messages": [item()], "validity": validity}
    if 15 <= validity <= 86_400:
        assert parse_viber_request(payload, NOW).ttl_seconds == validity
    else:
        assert code_of(payload) == 48


@given(st.text(max_size=1100))
def test_any_text_is_accepted_or_refused_with_46(text: str) -> None:
    payload = {"messages": [item(text=text)]}
    if text.strip() and len(text) <= 1000 and "\x00" not in text:
        assert parse_viber_request(payload, NOW).messages[0].text == text
    else:
        assert code_of(payload) == 46


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    )
)
def test_any_options_value_parses_or_is_a_clear_error(options: Any) -> None:
    try:
        parse_viber_request({"messages": [item(options=options)]}, NOW)
    except TidingsError as error:
        assert code_for(error, VIBER_CODES) in (44, 49)


def test_a_number_is_a_viber_user_or_not_every_time() -> None:
    numbers = [f"38097{i:07d}" for i in range(2000)]
    first = [has_viber(n, 0.5) for n in numbers]
    assert first == [has_viber(n, 0.5) for n in numbers]
    assert 800 < sum(first) < 1200
    assert all(has_viber(n, 0.0) for n in numbers)
    assert not any(has_viber(n, 1.0) for n in numbers)
