"""The MCCMNC of a carrier, from libphonenumber's carrier data and the E.212 MCC table.

libphonenumber knows which carrier a number range was allocated to, by name, but not its
MNC. Carriers of the countries Tidings is demonstrated with have their real MNC here; any
other carrier gets a stable made-up MNC: its position (from 01) among its country's carrier
names in alphabetical order. The simulator is the only user: real HLR providers answer the
network themselves.
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import carrier as _carrier

from tidings.numbering import CountryTable

# (ISO country, carrier name as libphonenumber spells it) -> MNC.
KNOWN_MNC: dict[tuple[str, str], str] = {
    ("UA", "Vodafone"): "01",
    ("UA", "Kyivstar"): "03",
    ("UA", "lifecell"): "06",
    ("UA", "3Mob"): "07",
    ("PL", "Plus"): "01",
    ("PL", "T-Mobile"): "02",
    ("PL", "Orange"): "03",
    ("PL", "Play"): "06",
    ("DE", "T-Mobile"): "01",
    ("DE", "Vodafone"): "02",
    ("DE", "O2"): "03",
    ("SE", "Telia"): "01",
    ("SE", "Tele2"): "07",
    ("SE", "Telenor"): "08",
}


# Numbers whose carrier is remembered, at most (an entry is ~200 bytes).
MEMO_SIZE = 100_000


class NetworkTable:
    """Carrier names per country code, and the MCCMNC of each; built once, on first use.

    libphonenumber finds a carrier by the longest prefix of the number in its carrier map,
    so `carrier_of` remembers answers by that many leading digits (at least the country code
    and four more, which also settles the region of shared codes such as +1): a simulated
    population of millions of numbers costs a few thousand parses.
    """

    def __init__(self, countries: CountryTable, memo_size: int = MEMO_SIZE) -> None:
        self._countries = countries
        self._carriers: dict[int, list[str]] | None = None
        self._prefix_lengths: dict[int, int] = {}
        self._memo: dict[str, tuple[str, int, str] | None] = {}
        self._memo_size = memo_size

    def carriers(self, country_code: int) -> list[str]:
        """The carrier names of a country code, sorted (empty when libphonenumber has none)."""
        if self._carriers is None:
            self._carriers, self._prefix_lengths = _carriers_by_code()
        return self._carriers.get(country_code, [])

    def carrier_of(self, msisdn: str) -> tuple[str, int, str] | None:
        """(ISO country, country code, carrier name) of E.164 digits, or None when unknown."""
        if self._carriers is None:
            self.carriers(0)
        key = msisdn
        for size in (1, 2, 3):
            code = int(msisdn[:size]) if msisdn[:size].isdigit() else 0
            if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
                length = max(self._prefix_lengths.get(code, 0), size + 4)
                key = msisdn[:length] if code in self._prefix_lengths else msisdn
                break
        if key in self._memo:
            return self._memo[key]
        if len(self._memo) >= self._memo_size:
            self._memo.clear()
        found = self._memo[key] = self._look_up(msisdn)
        return found

    def _look_up(self, msisdn: str) -> tuple[str, int, str] | None:
        try:
            number = phonenumbers.parse("+" + msisdn)
        except phonenumbers.NumberParseException:
            return None
        name = _carrier.name_for_number(number, "en")
        region = phonenumbers.region_code_for_number(number)
        if not name or not region or number.country_code is None:
            return None
        return region, number.country_code, name

    def mccmnc(self, iso: str, country_code: int, carrier: str) -> str | None:
        country = self._countries.by_iso(iso)
        if country is None:
            return None
        mnc = KNOWN_MNC.get((iso, carrier))
        if mnc is None:
            names = self.carriers(country_code)
            position = names.index(carrier) + 1 if carrier in names else len(names) + 1
            mnc = f"{min(position, 99):02d}"
        return f"{country.mcc}{mnc}"


def _carriers_by_code() -> tuple[dict[int, list[str]], dict[int, int]]:
    """Carrier names per country code, and the longest carrier prefix of each code."""
    try:
        from phonenumbers.carrierdata import CARRIER_DATA
    except ImportError:  # laid out differently: every carrier gets MNC 01, nothing memoised
        return {}, {}
    names: dict[int, set[str]] = {}
    lengths: dict[int, int] = {}
    for prefix, by_language in CARRIER_DATA.items():
        name = by_language.get("en")
        if not name:
            continue
        for size in (1, 2, 3):
            code = int(prefix[:size])
            if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
                names.setdefault(code, set()).add(name)
                lengths[code] = max(lengths.get(code, 0), len(prefix))
                break
    return {code: sorted(found) for code, found in names.items()}, lengths
