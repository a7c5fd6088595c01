"""Countries and their ITU-T E.212 mobile country codes (MCCs).

The table lives in ``data/mcc.csv`` (``iso,mcc,name``), one row per (country, MCC) pair.
A country's first row is its primary MCC; later rows are extra MCCs assigned to the same
country (US 310-316, IN 404-406, JP 440/441, CN 460/461, AE 424/430/431, GB 234/235).

Data notes:

* ``iso`` is the ISO 3166-1 alpha-2 code. Networks without an ISO code are left out:
  Kosovo (MCC 221, user-assigned ``XK``) and Abkhazia (MCC 289). International and
  satellite codes (901, 902, 991) are not countries and are left out too.
* Each MCC belongs to exactly one row. E.212 assigns some MCCs to a group of territories;
  the table gives such an MCC to one territory only so that ``by_mcc`` is unambiguous:
  340 (French Antilles) -> GP, 362 (former Netherlands Antilles) -> CW, and
  647 (French Indian Ocean departments) -> RE. Territories that have no MCC of their own
  are therefore absent, and ``by_iso`` returns None for them: AX (uses 244), BL, MF, MQ
  (340), BQ, SX (362), CC, CX, NF (505), GG, IM, JE (234), PS (425), SJ (242), YT (647),
  XK, EH, AC, TA.
* 534 (MP) and 535 (GU) are E.212 assignments even though operators there also use 310/311;
  225 (VA) is assigned although Vatican subscribers are mostly on Italian networks.
* ``name`` is the English short name: pycountry's ``common_name`` where it has one (e.g.
  "Iran", "South Korea"), else its ISO ``name``, except that ISO's inverted or
  parenthesised forms are replaced by their plain forms ("British Virgin Islands",
  "Democratic Republic of the Congo", "Falkland Islands", ...), so that people can type them
  into the ``country_name`` statistics filter.
"""

from __future__ import annotations

import csv
import functools
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources

__all__ = ["Country", "CountryTable", "default_country_table"]

_HEADER = ["iso", "mcc", "name"]


@dataclass(frozen=True, slots=True)
class Country:
    """A country or territory with its E.212 MCCs; ``mcc`` is the primary, also ``mccs[0]``."""

    iso: str
    name: str
    mcc: str
    mccs: tuple[str, ...]


class CountryTable:
    """Immutable lookup of countries by ISO code, MCC and English name.

    Build it once (``CountryTable.load()`` or ``default_country_table()``) and pass it around:
    loading parses a CSV, which is cheap but not something to repeat per message.
    """

    __slots__ = ("_by_iso", "_by_mcc", "_by_name", "_sorted")

    def __init__(self, countries: Iterable[Country]) -> None:
        by_iso: dict[str, Country] = {}
        by_mcc: dict[str, Country] = {}
        by_name: dict[str, Country] = {}
        for country in countries:
            if not country.mccs or country.mccs[0] != country.mcc:
                raise ValueError(f"{country.iso}: primary MCC must be the first of mccs")
            # Duplicates would make a lookup silently depend on row order, so refuse them.
            if country.iso.upper() in by_iso:
                raise ValueError(f"duplicate country {country.iso}")
            by_iso[country.iso.upper()] = country
            key = country.name.casefold()
            if key in by_name:
                raise ValueError(f"duplicate country name {country.name!r}")
            by_name[key] = country
            for mcc in country.mccs:
                if mcc in by_mcc:
                    raise ValueError(f"MCC {mcc} given to both {by_mcc[mcc].iso} and {country.iso}")
                by_mcc[mcc] = country
        self._by_iso = by_iso
        self._by_mcc = by_mcc
        self._by_name = by_name
        self._sorted = tuple(sorted(by_iso.values(), key=lambda c: c.iso))

    @classmethod
    def load(cls) -> CountryTable:
        """Read the table shipped as package data (``tidings/numbering/data/mcc.csv``)."""
        # Chained joinpath: zip-backed Traversables take one path segment per call.
        data = resources.files("tidings.numbering").joinpath("data").joinpath("mcc.csv")
        return cls.from_csv(data.read_text(encoding="utf-8"))

    @classmethod
    def from_csv(cls, text: str) -> CountryTable:
        """Parse ``iso,mcc,name`` rows; a country's first row gives its primary MCC."""
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if header != _HEADER:
            raise ValueError(f"mcc table header must be {','.join(_HEADER)}, got {header}")
        # dicts keep insertion order, so each country's first row stays its primary MCC.
        names: dict[str, str] = {}
        mccs: dict[str, list[str]] = {}
        for line, row in enumerate(reader, start=2):
            if len(row) != 3:
                raise ValueError(f"mcc table line {line}: expected 3 fields, got {len(row)}")
            iso, mcc, name = (field.strip() for field in row)
            if len(iso) != 2 or not (iso.isascii() and iso.isalpha() and iso.isupper()):
                raise ValueError(f"mcc table line {line}: bad ISO code {iso!r}")
            if len(mcc) != 3 or not (mcc.isascii() and mcc.isdigit()):
                raise ValueError(f"mcc table line {line}: bad MCC {mcc!r}")
            if not name:
                raise ValueError(f"mcc table line {line}: empty name")
            if names.setdefault(iso, name) != name:
                raise ValueError(f"mcc table line {line}: {iso} also named {names[iso]!r}")
            mccs.setdefault(iso, []).append(mcc)
        return cls(
            Country(iso=iso, name=names[iso], mcc=codes[0], mccs=tuple(codes))
            for iso, codes in mccs.items()
        )

    def by_iso(self, iso: str) -> Country | None:
        """Country for an ISO 3166-1 alpha-2 code, any case; None when it has no MCC."""
        return self._by_iso.get(iso.strip().upper())

    def by_mcc(self, mcc: str) -> Country | None:
        """Country that owns a three-digit MCC, primary or not."""
        return self._by_mcc.get(mcc.strip())

    def by_name(self, name: str) -> Country | None:
        """Country whose English name equals ``name``, ignoring case."""
        return self._by_name.get(name.strip().casefold())

    def __iter__(self) -> Iterator[Country]:
        return iter(self._sorted)

    def __len__(self) -> int:
        return len(self._sorted)


@functools.cache
def default_country_table() -> CountryTable:
    """The shipped table, loaded on first use and shared afterwards."""
    return CountryTable.load()
