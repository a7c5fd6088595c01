"""Destination MSISDN parsing for the submit hot path.

``parse_msisdn`` turns a client-supplied number into E.164 digits plus the destination
country (and the carrier that owns the number range, when phonenumbers knows it).
phonenumbers costs tens of microseconds per number, far too much at 20,000+ messages/s, so
the work is memoised per distinct number in a bounded LRU cache; traffic repeats numbers
(campaign retries, OTP resends, status look-ups), and the cache makes repeats ~100x cheaper.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import phonenumbers
from phonenumbers import carrier as _carrier

__all__ = ["Destination", "InvalidMsisdn", "parse_msisdn"]

# E.164 caps numbers at 15 digits. Below 8 digits only a handful of tiny numbering plans
# (e.g. Niue, Tokelau) have valid numbers; we refuse them so that short codes and typos
# can never be mistaken for international numbers.
_MIN_DIGITS = 8
_MAX_DIGITS = 15

# ~100k entries of a few hundred bytes each: tens of MB, bounded, and large enough to hold
# the working set of numbers seen in a busy hour.
_CACHE_SIZE = 100_000


class InvalidMsisdn(ValueError):
    """The number cannot be a destination; ``args[0]`` is a short reason.

    The reason never repeats the number itself, so it is safe to log or return to clients
    without leaking subscriber numbers (personal data) into logs.
    """

    @property
    def reason(self) -> str:
        return str(self.args[0]) if self.args else "invalid number"


@dataclass(frozen=True, slots=True)
class Destination:
    """A validated destination.

    ``msisdn`` holds E.164 digits without "+"; ``iso`` the ISO 3166-1 alpha-2 region that
    phonenumbers assigns to the number; ``carrier`` the English name of the operator the
    number range was allocated to (not the current one where numbers are portable), or None.
    """

    msisdn: str
    iso: str
    country_code: int
    carrier: str | None


def parse_msisdn(raw: str) -> Destination:
    """Validate and normalise a destination number.

    Accepts ASCII digits with an optional leading "+" or "00", and surrounding whitespace;
    the digits are always read as an international number (country code first).
    Raises InvalidMsisdn for anything else, for numbers outside 8-15 digits, and for
    numbers phonenumbers does not consider valid for their country.
    """
    result = _parse_digits(_international_digits(raw))
    if isinstance(result, str):
        raise InvalidMsisdn(result)
    return result


def _international_digits(raw: str) -> str:
    # Cheap syntactic checks run before the cache so junk cannot evict real numbers.
    text = raw.strip()
    if text.startswith("+"):
        text = text[1:]
    elif text.startswith("00"):
        text = text[2:]
    if not text:
        raise InvalidMsisdn("empty number")
    # isascii() matters: str.isdigit() also accepts e.g. Arabic-Indic and superscript digits.
    if not (text.isascii() and text.isdigit()):
        raise InvalidMsisdn("number must contain only digits")
    if len(text) < _MIN_DIGITS:
        raise InvalidMsisdn("number too short")
    if len(text) > _MAX_DIGITS:
        raise InvalidMsisdn("number too long")
    return text


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _parse_digits(digits: str) -> Destination | str:
    # Returns the rejection reason instead of raising: lru_cache does not memoise
    # exceptions, and invalid numbers get resent as often as valid ones.
    # The digits are E.164 already, so build the number directly instead of calling
    # phonenumbers.parse(), which spends most of its 40 us on free-form input handling.
    # Country codes are a prefix code: the first 1-3 digit prefix that is one is the one.
    # None starts with 0 (int("07") would read as 7 and keep the zero in the number).
    if digits.startswith("0"):
        return "unknown country code"
    for length in (1, 2, 3):
        country_code = int(digits[:length])
        if country_code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            break
    else:
        return "unknown country code"
    national = digits[length:]
    if not national:
        return "not a phone number"
    number = phonenumbers.PhoneNumber(country_code=country_code, national_number=int(national))
    if national.startswith("0"):
        # Italian-style numbers keep their leading zeros after the country code.
        number.italian_leading_zero = True
        number.number_of_leading_zeros = len(national) - len(national.lstrip("0"))
    region = phonenumbers.region_code_for_number(number)
    if region is None or region == phonenumbers.UNKNOWN_REGION:
        return "not a valid number for any country"
    if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
        # +800, +808, +870, +88x... belong to no country, so no country routing applies.
        return "not a country number"
    # is_valid_number() would look the region up again; this is the same check, once.
    if not phonenumbers.is_valid_number_for_region(number, region):
        return f"not a valid number for {region}"
    msisdn = digits
    # name_for_valid_number skips the validity check we have just done.
    carrier = _carrier.name_for_valid_number(number, "en") or None
    return Destination(
        msisdn=msisdn, iso=region, country_code=number.country_code or 0, carrier=carrier
    )
