"""The HLR request parser: both of the seed's forms, every field rule, and any input at all
ends in a request or an InvalidRequest (never another exception)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.api.client.errors import HLR_CODES
from tidings.api.client.hlr_parsing import parse_hlr_request
from tidings.errors import InvalidRequest
from tidings.hlr.service import HlrItem


def test_single_form_with_every_field() -> None:
    request = parse_hlr_request(
        {
            "msisdn": "380505142320",
            "reference": "sendHLR0407",
            "tariff": "9",
            "callback_url": "https://somelink.com/hlr",
        }
    )
    assert not request.is_batch
    assert request.items == [HlrItem("380505142320", "sendHLR0407", 9, "https://somelink.com/hlr")]


def test_bulk_forms() -> None:
    items = [{"msisdn": 380972920000, "reference": 13423, "tariff": 9}]
    for payload in (items, {"payload": items}, {"payload": orjson.dumps(items).decode()}):
        request = parse_hlr_request(payload)
        assert request.is_batch
        assert request.items == [HlrItem("380972920000", "13423", 9, None)]


def test_unusable_callback_url_is_ignored_and_empty_tariff_is_none() -> None:
    [item] = parse_hlr_request(
        {"msisdn": "1", "reference": "r", "callback_url": "ftp://x", "tariff": ""}
    ).items
    assert item.callback_url is None and item.tariff is None


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"reference": "r"}, "missing"),
        ([{"reference": "r"}], "bad_payload"),
        ({"msisdn": True, "reference": "r"}, "bad_msisdn"),
        ({"msisdn": "1"}, "missing_reference"),
        ({"msisdn": "1", "reference": "a;b"}, "bad_reference"),
        ({"msisdn": "1", "reference": "r", "tariff": 10}, "bad_tariff"),
        ({"msisdn": "1", "reference": "r", "tariff": "x"}, "bad_tariff"),
        ([], "bad_payload"),
        (["380972920000"], "bad_payload"),
        ({"payload": "{"}, "bad_payload"),
        ({"payload": {"msisdn": "1"}}, "bad_payload"),
        ("text", "bad_payload"),
    ],
)
def test_rules(payload: Any, reason: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_hlr_request(payload)
    assert raised.value.reason == reason
    assert reason in HLR_CODES


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["msisdn", "reference", "tariff", "callback_url", "payload", "x"]),
            children,
            max_size=5,
        )
    ),
    max_leaves=12,
)


@given(json_values)
def test_any_input_is_a_request_or_a_coded_error(payload: Any) -> None:
    try:
        request = parse_hlr_request(payload)
    except InvalidRequest as error:
        assert error.reason in HLR_CODES
        return
    assert request.items
    for item in request.items:
        assert isinstance(item.msisdn, str) and isinstance(item.reference, str)
        assert item.tariff is None or 0 <= item.tariff <= 9
