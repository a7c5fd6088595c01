"""Tests for tidings.numbering: MSISDN parsing and the E.212 country table."""

from __future__ import annotations

import phonenumbers
import pycountry
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.numbering import (
    Country,
    CountryTable,
    Destination,
    InvalidMsisdn,
    default_country_table,
    parse_msisdn,
)

# Territories phonenumbers knows that have no MCC of their own in E.212 (they use their
# parent's, or share a group MCC given to one member); see the countries module docstring.
NO_OWN_MCC = {
    "AC", "AX", "BL", "BQ", "CC", "CX", "EH", "GG", "IM",
    "JE", "MF", "MQ", "NF", "PS", "SJ", "SX", "TA", "XK", "YT",
}  # fmt: skip


@pytest.fixture(scope="module")
def table() -> CountryTable:
    return CountryTable.load()


# --- parse_msisdn -------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["380972000000", "380505142320", "380972920283"])
def test_ukrainian_seed_numbers(raw: str) -> None:
    dest = parse_msisdn(raw)
    assert dest == Destination(msisdn=raw, iso="UA", country_code=380, carrier=dest.carrier)


@pytest.mark.parametrize("raw", ["+380972000000", "00380972000000", "  380972000000\n"])
def test_international_prefixes_and_whitespace_are_normalised(raw: str) -> None:
    assert parse_msisdn(raw).msisdn == "380972000000"


def test_swedish_mobile() -> None:
    dest = parse_msisdn("46701234567")
    assert (dest.msisdn, dest.iso, dest.country_code) == ("46701234567", "SE", 46)


def test_carrier_is_english_name_or_none() -> None:
    assert parse_msisdn("380972000000").carrier == "Kyivstar"
    # A US number has no carrier data in phonenumbers: None, never "".
    assert parse_msisdn("12015550123").carrier is None


def test_repeated_numbers_come_from_the_cache() -> None:
    assert parse_msisdn("380972920283") is parse_msisdn("+380972920283")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty number"),
        ("+", "empty number"),
        ("38097200000O", "number must contain only digits"),  # letter O
        ("abc", "number must contain only digits"),
        ("+380 97 200 0000", "number must contain only digits"),
        ("+-380972000000", "number must contain only digits"),
        ("٣٨٠٩٧٢٠٠٠٠٠٠", "number must contain only digits"),  # Arabic-Indic digits
        ("077000000000", "unknown country code"),  # int("07") is 7: no country code has a 0
        ("+0380972000000", "unknown country code"),
        ("123", "number too short"),
        ("1234567", "number too short"),
        ("3809720000001234", "number too long"),  # 16 digits
        ("00" + "4" * 20, "number too long"),
        ("380112345678", "not a valid number for UA"),
        ("80012345678", "not a country number"),  # +800 international freephone
    ],
)
def test_rejections(raw: str, reason: str) -> None:
    with pytest.raises(InvalidMsisdn) as info:
        parse_msisdn(raw)
    assert info.value.reason == reason
    assert isinstance(info.value, ValueError)


def test_rejection_reason_does_not_leak_the_number() -> None:
    with pytest.raises(InvalidMsisdn) as info:
        parse_msisdn("380112345678")
    assert "380112345678" not in str(info.value)


def _check_accepted(dest: Destination) -> None:
    assert 8 <= len(dest.msisdn) <= 15
    assert dest.msisdn.isascii() and dest.msisdn.isdigit()
    assert dest.msisdn.startswith(str(dest.country_code))
    assert len(dest.iso) == 2 and dest.iso.isupper()
    assert dest.carrier is None or dest.carrier


@settings(deadline=None)  # the first call loads phonenumbers metadata
@given(st.text())
def test_arbitrary_text_only_raises_invalid_msisdn(raw: str) -> None:
    try:
        dest = parse_msisdn(raw)
    except InvalidMsisdn:
        return
    _check_accepted(dest)


@settings(deadline=None)
@given(st.from_regex(r"\A\s?(\+|00)?[0-9]{0,17}\s?\Z"))
def test_number_like_text_only_raises_invalid_msisdn(raw: str) -> None:
    try:
        dest = parse_msisdn(raw)
    except InvalidMsisdn:
        return
    _check_accepted(dest)


# --- CountryTable -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("iso", "mcc", "name"),
    [
        ("AE", "424", "United Arab Emirates"),
        ("AF", "412", "Afghanistan"),
        ("UA", "255", "Ukraine"),
        ("RU", "250", "Russian Federation"),
        ("SE", "240", "Sweden"),
        ("DE", "262", "Germany"),
        ("GB", "234", "United Kingdom"),
        ("US", "310", "United States"),
        ("FR", "208", "France"),
        ("KZ", "401", "Kazakhstan"),
        ("PL", "260", "Poland"),
    ],
)
def test_known_primary_mccs(table: CountryTable, iso: str, mcc: str, name: str) -> None:
    country = table.by_iso(iso.lower())
    assert country is not None
    assert (country.iso, country.mcc, country.name) == (iso, mcc, name)
    assert country.mccs[0] == country.mcc
    assert table.by_mcc(mcc) is country


def test_countries_with_several_mccs(table: CountryTable) -> None:
    expected = {
        "US": ("310", "311", "312", "313", "314", "315", "316"),
        "IN": ("404", "405", "406"),
        "JP": ("440", "441"),
        "GB": ("234", "235"),
        "AE": ("424", "430", "431"),
        "CN": ("460", "461"),
    }
    for iso, mccs in expected.items():
        country = table.by_iso(iso)
        assert country is not None and country.mccs == mccs
        assert all(table.by_mcc(mcc) is country for mcc in mccs)


def test_lookups(table: CountryTable) -> None:
    ukraine = table.by_iso("UA")
    assert ukraine is not None
    assert table.by_mcc("255") is ukraine
    assert table.by_name("ukraine") is ukraine
    assert table.by_name("UNITED ARAB EMIRATES") is table.by_iso("AE")
    assert table.by_name("côte d'ivoire") is table.by_iso("CI")
    assert table.by_iso("ZZ") is None
    assert table.by_iso("IM") is None  # Isle of Man uses the UK's 234
    assert table.by_mcc("999") is None
    assert table.by_name("Atlantis") is None


def test_iteration_is_sorted_by_iso(table: CountryTable) -> None:
    isos = [country.iso for country in table]
    assert isos == sorted(isos)
    assert len(table) == len(isos) == len(set(isos))
    assert len(table) > 220


def test_every_iso_is_a_real_alpha2_code(table: CountryTable) -> None:
    for country in table:
        assert pycountry.countries.get(alpha_2=country.iso) is not None, country.iso


def test_names_are_pycountry_names_in_plain_form(table: CountryTable) -> None:
    for country in table:
        official = pycountry.countries.get(alpha_2=country.iso)
        assert official is not None
        known = {official.name, getattr(official, "common_name", official.name)}
        # Only ISO's inverted/parenthesised names ("Virgin Islands, British") are rewritten.
        if country.name not in known:
            assert "," in official.name or "(" in official.name, (country, official.name)


def test_every_mcc_is_three_digits(table: CountryTable) -> None:
    for country in table:
        for mcc in country.mccs:
            assert len(mcc) == 3 and mcc.isascii() and mcc.isdigit(), (country.iso, mcc)
            assert mcc[0] in "234567" or mcc == "995", (country.iso, mcc)


def test_primary_and_all_mccs_are_unique(table: CountryTable) -> None:
    primaries = [country.mcc for country in table]
    assert len(primaries) == len(set(primaries))
    every = [mcc for country in table for mcc in country.mccs]
    assert len(every) == len(set(every))


def test_table_agrees_with_phonenumbers_regions(table: CountryTable) -> None:
    isos = {country.iso for country in table}
    regions = set(phonenumbers.SUPPORTED_REGIONS)
    assert isos <= regions
    assert regions - isos == NO_OWN_MCC


def test_parsed_destinations_resolve_to_countries(table: CountryTable) -> None:
    for raw in ("380972000000", "46701234567", "77011234567", "971501234567"):
        dest = parse_msisdn(raw)
        assert table.by_iso(dest.iso) is not None, raw


def test_default_table_is_shared() -> None:
    assert default_country_table() is default_country_table()
    assert len(default_country_table()) == len(CountryTable.load())


def test_from_csv_rejects_bad_data() -> None:
    good = "iso,mcc,name\nUA,255,Ukraine\n"
    assert len(CountryTable.from_csv(good)) == 1
    with pytest.raises(ValueError, match="header"):
        CountryTable.from_csv("country,mcc\nUA,255\n")
    with pytest.raises(ValueError, match="MCC 255"):
        CountryTable.from_csv(good + "PL,255,Poland\n")
    with pytest.raises(ValueError, match="bad MCC"):
        CountryTable.from_csv(good + "PL,26,Poland\n")
    with pytest.raises(ValueError, match="bad ISO"):
        CountryTable.from_csv(good + "pl,260,Poland\n")
    with pytest.raises(ValueError, match="also named"):
        CountryTable.from_csv(good + "UA,256,Ukrainia\n")


def test_country_constructor_requires_primary_first() -> None:
    with pytest.raises(ValueError, match="primary"):
        CountryTable([Country(iso="US", name="United States", mcc="311", mccs=("310", "311"))])
