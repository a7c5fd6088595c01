"""Phone numbering: destination MSISDN parsing and the E.212 country/MCC table."""

from tidings.numbering.countries import Country, CountryTable, default_country_table
from tidings.numbering.msisdn import Destination, InvalidMsisdn, parse_msisdn

__all__ = [
    "Country",
    "CountryTable",
    "Destination",
    "InvalidMsisdn",
    "default_country_table",
    "parse_msisdn",
]
