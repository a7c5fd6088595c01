"""Which inbound texts are STOP or START keywords.

The whole message must be the keyword: "STOP" opts out, "Stop, please don't" does not (a
reply that merely mentions the word is a conversation, not a request). Matching forgives what
handsets and people add around a word, and nothing else:

- white space, punctuation and symbols around the word ("Stop.", "STOP!", "«СТОП»",
  "stop 🙏"), but not inside it ("S.T.O.P" is not STOP);
- case, by Unicode case folding (``str.casefold``), so "стоп", "СТОП" and "Стоп" are one,
  and "STOPP" matches "stopp";
- compatibility forms (NFKC): full-width "ＳＴＯＰ" is "STOP";
- invisible format characters (zero-width spaces and joiners, a BOM) anywhere.

Keywords are a gateway setting (TIDINGS_OPTOUT_KEYWORDS, TIDINGS_OPTIN_KEYWORDS), not per
client: which words must stop a sender is the jurisdiction's and the carriers' rule, and a
client that could drop STOP from its own list could ignore it (docs/optouts.md).
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from tidings.errors import ConfigurationError

DEFAULT_OPTOUT_KEYWORDS = "STOP,STOPALL,UNSUBSCRIBE,CANCEL,END,QUIT,СТОП,ОТПИСАТЬСЯ,STOPP"
DEFAULT_OPTIN_KEYWORDS = "START"


class Keyword(enum.Enum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"


def _edge(char: str) -> bool:
    """White space, punctuation and symbols: what may surround a keyword."""
    return char.isspace() or unicodedata.category(char)[0] in "PSZ"


def _strip(text: str) -> str:
    start, end = 0, len(text)
    while start < end and _edge(text[start]):
        start += 1
    while end > start and _edge(text[end - 1]):
        end -= 1
    return text[start:end]


def normalize(text: str) -> str:
    """The form texts and keywords are compared in."""
    # Format characters (Cf: zero-width space/joiner, BOM, bidi marks) are invisible: a
    # handset or a copy-paste can put them anywhere, and they never make a word different.
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    # Edges go before NFKC as well as after it: NFKC spells some symbols out in letters
    # ("㈀" is "(ᄀ)"), which would turn a symbol after a keyword into a word.
    text = _strip(unicodedata.normalize("NFKC", _strip(text)))
    # Case folding can leave text NFKC would still change: normalise once more.
    return unicodedata.normalize("NFKC", text.casefold())


@dataclass(frozen=True, slots=True)
class KeywordSet:
    optout: frozenset[str]
    optin: frozenset[str]

    @classmethod
    def of(cls, optout: Iterable[str], optin: Iterable[str]) -> KeywordSet:
        out = frozenset(normalize(word) for word in optout) - {""}
        back = frozenset(normalize(word) for word in optin) - {""}
        if not out:
            raise ConfigurationError("no opt-out keywords", reason="optout_keywords")
        both = out & back
        if both:
            raise ConfigurationError(
                f"{sorted(both)[0]!r} is both an opt-out and an opt-in keyword",
                reason="optout_keywords",
            )
        return cls(out, back)

    @classmethod
    def parse(cls, optout: str, optin: str) -> KeywordSet:
        """From the settings' comma-separated lists."""
        return cls.of(optout.split(","), optin.split(","))

    @classmethod
    def default(cls) -> KeywordSet:
        return cls.parse(DEFAULT_OPTOUT_KEYWORDS, DEFAULT_OPTIN_KEYWORDS)

    def classify(self, text: str) -> Keyword | None:
        word = normalize(text)
        if word in self.optout:
            return Keyword.OPT_OUT
        if word in self.optin:
            return Keyword.OPT_IN
        return None
