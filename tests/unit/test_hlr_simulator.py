"""The HLR simulator: the same answer for the same number, networks from libphonenumber's
carrier data, ratios honoured over a population; the retry policy's back-off."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.connectors.hlr.base import ACTIVE, FINAL_STATUSES, HlrQuery, Outcome
from tidings.connectors.hlr.networks import NetworkTable
from tidings.connectors.hlr.simulator import HlrSimulator
from tidings.errors import ConfigurationError
from tidings.hlr.results import RetryPolicy
from tidings.numbering import CountryTable

COUNTRIES = CountryTable.load()


def simulator(**options: object) -> HlrSimulator:
    return HlrSimulator(1, dict(options), COUNTRIES)


def test_home_networks_of_ukrainian_carriers() -> None:
    plain = simulator(absent_ratio=0, failed_ratio=0, ported_ratio=0)
    assert plain.answer("380505142320").network == "25501"  # Vodafone
    assert plain.answer("380972920000").network == "25503"  # Kyivstar
    assert plain.answer("380932990000").network == "25506"  # lifecell
    assert plain.answer("380505142320").status == ACTIVE


def test_numbers_without_a_known_carrier_are_unknown() -> None:
    answer = simulator(failed_ratio=0).answer("12025550123")
    assert (answer.status, answer.network) == ("unknown", None)


def test_a_ported_number_is_on_another_carrier_of_its_country() -> None:
    ported = simulator(ported_ratio=1, absent_ratio=0, failed_ratio=0).answer("380972920000")
    assert ported.ported and ported.network is not None
    assert ported.network.startswith("255") and ported.network != "25503"


def test_unknown_carriers_get_a_stable_made_up_mnc() -> None:
    table = NetworkTable(COUNTRIES)
    found = table.carrier_of("46701234567")
    assert found is not None
    assert table.mccmnc(*found) == table.mccmnc(*found)
    assert (table.mccmnc(*found) or "").startswith("240")


# No deadline: a case's time is mostly libphonenumber loading its carrier data on first use,
# which a busy machine can stretch past any fixed limit.
@settings(deadline=None)
@given(st.integers(min_value=380500000000, max_value=380999999999))
def test_the_answer_is_a_function_of_the_number(number: int) -> None:
    one, two = simulator(), simulator()
    assert one.answer(str(number)) == two.answer(str(number))
    assert one.answer(str(number)).status in FINAL_STATUSES


def test_ratios_over_a_population() -> None:
    sim = simulator(absent_ratio=0.2, failed_ratio=0.1, ported_ratio=0.5, roaming_ratio=0.3)
    answers = [sim.answer(f"38097{i:07d}") for i in range(4000)]
    counts = Counter(a.status for a in answers)
    assert 300 < counts["failed"] < 500  # 10 %
    assert 600 < counts["absent"] < 840  # 20 % of the rest
    active = [a for a in answers if a.status == ACTIVE]
    assert 0.4 < sum(a.ported for a in active) / len(active) < 0.6
    assert 0.22 < sum(a.roaming for a in active) / len(active) < 0.38
    # Another seed, another population.
    other = simulator(absent_ratio=0.2, failed_ratio=0.1, seed="b")
    assert [other.answer(f"38097{i:07d}") for i in range(200)] != answers[:200]


async def test_lookup_answers_every_query_and_drills_outages() -> None:
    queries = [HlrQuery(i, f"38097292000{i}") for i in range(5)]
    answers = await simulator().lookup(queries)
    assert sorted(a.lookup_id for a in answers) == list(range(5))
    assert {a.outcome for a in answers} == {Outcome.RESULT}
    outage = await simulator(retry_ratio=1).lookup(queries)
    assert {a.outcome for a in outage} == {Outcome.RETRY}


@pytest.mark.parametrize(
    "options", [{"absent_ratio": 2}, {"ported_ratio": "x"}, {"latency_ms": "x"}]
)
def test_bad_options(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        HlrSimulator(1, options, COUNTRIES)


def test_retry_back_off_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(base_seconds=2, max_delay_seconds=300)
    assert [policy.delay(n) for n in range(1, 10)] == [2, 4, 8, 16, 32, 64, 128, 256, 300]
