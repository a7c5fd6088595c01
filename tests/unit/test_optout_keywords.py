"""STOP / START keyword matching: the whole text is the keyword, forgiving case, the
punctuation, symbols and white space around it, compatibility forms and invisible marks."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tidings.config import Settings
from tidings.errors import ConfigurationError
from tidings.optouts.keywords import Keyword, KeywordSet, normalize

KEYWORDS = KeywordSet.default()
OPT_OUT_WORDS = [
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "СТОП",
    "ОТПИСАТЬСЯ",
    "STOPP",
]

# What may surround a keyword: white space, punctuation, symbols (emoji included).
edges = st.text(
    alphabet=st.characters(categories=["Zs", "Po", "Ps", "Pe", "Pi", "Pf", "Pd", "So", "Sm"])
    | st.sampled_from([" ", "\t", "\n", "\r"]),
    max_size=5,
)


def _any_case(draw: st.DrawFn, word: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return "".join(c.lower() if flip else c.upper() for c, flip in zip(word, flips, strict=True))


@st.composite
def dressed_keyword(draw: st.DrawFn, words: list[str]) -> str:
    """A keyword in any case, with anything forgivable around it and invisible marks in it."""
    word = _any_case(draw, draw(st.sampled_from(words)))
    if draw(st.booleans()):
        at = draw(st.integers(0, len(word)))
        word = (
            word[:at] + draw(st.sampled_from(["\u200b", "\u200d", "\ufeff", "\u2060"])) + word[at:]
        )
    if draw(st.booleans()):  # full-width forms of the Latin letters
        word = "".join(
            chr(ord(c) + 0xFEE0) if "A" <= c <= "Z" or "a" <= c <= "z" else c for c in word
        )
    return draw(edges) + word + draw(edges)


@given(dressed_keyword(OPT_OUT_WORDS))
@example("Stop.")
@example("STOP!")
@example("  стоп  ")
@example("«Отписаться»")
@example("stop 🙏")
@example("ＳＴＯＰ")
@settings(max_examples=300, deadline=None)
def test_every_dressed_opt_out_keyword_opts_out(text: str) -> None:
    assert KEYWORDS.classify(text) is Keyword.OPT_OUT


@given(dressed_keyword(["START"]))
@example("Start.")
@settings(max_examples=100, deadline=None)
def test_start_opts_back_in(text: str) -> None:
    assert KEYWORDS.classify(text) is Keyword.OPT_IN


@given(
    st.sampled_from([*OPT_OUT_WORDS, "START"]),
    st.text(alphabet=st.characters(categories=["Lu", "Ll", "Nd"]), min_size=1, max_size=8),
    st.booleans(),
)
@example("STOP", "please", False)
@settings(max_examples=300, deadline=None)
def test_a_keyword_with_more_words_or_letters_is_a_conversation(
    word: str, more: str, before: bool
) -> None:
    """The whole message must be the keyword: another word or letter makes it none."""
    for text in (f"{more} {word}" if before else f"{word} {more}", f"{word}{more}"):
        if normalize(text) in KEYWORDS.optout | KEYWORDS.optin:
            continue  # "STOP" + "P" is STOPP, "STOP" + "ALL" is STOPALL: keywords themselves
        assert KEYWORDS.classify(text) is None, text


@given(st.text(max_size=30))
@settings(max_examples=300, deadline=None)
def test_normalize_is_idempotent_and_classify_depends_only_on_it(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    assert KEYWORDS.classify(text) == KEYWORDS.classify(once)


@pytest.mark.parametrize(
    "text", ["S.T.O.P", "STOP ALL", "don't stop", "", "   ", "СТОПКА", "stop-it", "STO P"]
)
def test_near_misses_are_no_keywords(text: str) -> None:
    assert KEYWORDS.classify(text) is None


def test_cyrillic_case_folds_as_latin_does() -> None:
    assert normalize("СТОП") == normalize("стоп") == normalize("Стоп") == "стоп"
    # Latin look-alikes are different letters: "CTOП" typed with Latin C, T, O is no keyword.
    assert KEYWORDS.classify("CTOП") is None


def test_keywords_come_from_the_settings() -> None:
    custom = KeywordSet.parse("halt, Arrête ,", "go")
    assert custom.classify("ARRÊTE!") is Keyword.OPT_OUT
    assert custom.classify("Go") is Keyword.OPT_IN
    assert custom.classify("STOP") is None


@pytest.mark.parametrize(("optout", "optin"), [("", "START"), ("STOP", "stop."), (",", "")])
def test_unusable_keyword_settings_fail_at_start(optout: str, optin: str) -> None:
    with pytest.raises(ConfigurationError):
        KeywordSet.parse(optout, optin)


def test_settings_refuse_unusable_keywords_when_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDINGS_OPTOUT_KEYWORDS", "STOP,HALT")
    assert Settings().keywords().classify("halt!") is Keyword.OPT_OUT
    monkeypatch.setenv("TIDINGS_OPTIN_KEYWORDS", "Halt")
    with pytest.raises(ValidationError, match="both an opt-out and an opt-in keyword"):
        Settings()
