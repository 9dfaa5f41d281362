"""Counted nouns ("1 invoice", "2 invoices", "1,250 lines") by Babel's plural rules (CLDR).

The word is chosen by the plural rule of the language the sentence is written in (our emails,
CLI and documents are in English: `LANGUAGE`), the number is written in the reader's locale
(grouping and digits: "1.250 lines" for de_DE). Choosing the word by the reader's locale would
be wrong for English words: French puts 0 in the "one" category ("0 invoice"), Polish has
"few" and "many". A sentence translated later passes its own language and the forms it has.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Mapping

from babel import Locale
from babel.numbers import format_decimal

#: The language our messages are written in.
LANGUAGE = "en"


@lru_cache(maxsize=64)
def _locale(name: str) -> Locale:
    return Locale.parse(name)


def category(n: int, language: str = LANGUAGE) -> str:
    """The CLDR plural category of `n` in `language`: "zero", "one", "two", "few", "many" or
    "other"."""
    return str(_locale(language).plural_form(n))


def word(n: int, one: str, other: str, *, forms: Mapping[str, str] | None = None,
         language: str = LANGUAGE) -> str:
    """The noun for `n` things: `one` or `other` (English has no other categories), or the form of
    `forms` for the category of `n` in `language` (falling back to `other`)."""
    chosen = {"one": one, "other": other, **(forms or {})}
    return chosen.get(category(n, language), other)


def counted(n: int, one: str, other: str, locale: str = "en", *, forms: Mapping[str, str] | None = None,
            language: str = LANGUAGE) -> str:
    """"1 invoice", "2 invoices", "1,250 lines": the number in `locale`, the noun by the plural
    rule of `language`."""
    return f"{format_decimal(n, locale=_locale(locale or 'en'))} {word(n, one, other, forms=forms, language=language)}"
