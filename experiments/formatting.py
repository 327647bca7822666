"""Numbers and dates as a reader of each language writes them: 1 234,5 and 25,64 € in French, 1,234.5 and
€25.64 in English. The one place where a figure becomes text, for the console, the report and the portal.

A value that is missing or not a finite number is written as an em dash: never "None", "nan" or "inf".
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from functools import lru_cache

from babel import Locale
from babel import dates as babel_dates
from babel import numbers as babel_numbers

from experiments.i18n import Language

#: What a missing or non-finite value is written as, in every language.
MISSING = "—"
#: p-values below this are written "< 0.001": more digits would only suggest a precision nobody has.
SMALLEST_P_VALUE = 0.001


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def count(value: float | None, language: Language) -> str:
    """Returns a count with the language's thousands separator: "1 211" (fr), "1,211" (en)."""
    if value is None or not _finite(value):
        return MISSING
    return babel_numbers.format_decimal(round(value), format="#,##0", locale=language)


def number(value: float | None, language: Language, decimals: int = 1) -> str:
    """Returns a number rounded to at most `decimals` places: "3,8" (fr), "3.8" (en)."""
    if value is None or not _finite(value):
        return MISSING
    pattern = "#,##0" + ("." + "#" * decimals if decimals > 0 else "")
    return babel_numbers.format_decimal(value, format=pattern, locale=language)


def share(value: float | None, language: Language, decimals: int = 0) -> str:
    """Returns a share (0.5541) as a percentage: "55 %" (fr), "55%" (en)."""
    if value is None or not _finite(value):
        return MISSING
    return babel_numbers.format_percent(value, format=_percent_pattern(language, decimals), locale=language)


@lru_cache(maxsize=16)
def _percent_pattern(language: Language, decimals: int) -> str:
    """Returns the language's own percent pattern ("#,##0 %" in French) with `decimals` places."""
    pattern: str = Locale.parse(language).percent_formats[None].pattern
    if decimals <= 0:
        return pattern
    head, zero, tail = pattern.rpartition("0")
    return f"{head}{zero}.{'0' * decimals}{tail}"


def signed_share(value: float | None, language: Language, decimals: int = 1) -> str:
    """Returns a relative change with its sign: "+5,2 %" (fr), "-3.0%" (en)."""
    if value is None or not _finite(value):
        return MISSING
    text = share(abs(value), language, decimals)
    return ("+" if value > 0 else "−" if value < 0 else "") + text


def money(amount: float | None, currency: str, language: Language) -> str:
    """Returns an amount of money: "25,64 €" (fr), "€25.64" (en); whole amounts from 1,000 without cents."""
    if amount is None or not _finite(amount):
        return MISSING
    if abs(amount) < 1000:
        return babel_numbers.format_currency(amount, currency, locale=language)
    whole = Locale.parse(language).currency_formats["standard"].pattern.replace(".00", "")
    return babel_numbers.format_currency(amount, currency, format=whole, currency_digits=False, locale=language)


def p_value(p: float | None, language: Language) -> str:
    """Returns a p-value: "< 0,001" (fr) below 0.001, else three decimals ("0,042")."""
    if p is None or not _finite(p):
        return MISSING
    if p < SMALLEST_P_VALUE:
        return "< " + babel_numbers.format_decimal(SMALLEST_P_VALUE, format="0.000", locale=language)
    return babel_numbers.format_decimal(p, format="0.000", locale=language)


def day(value: date | None, language: Language, length: str = "medium") -> str:
    """Returns a date: "20 nov. 2026" (fr), "Nov 20, 2026" (en) at the medium length."""
    if value is None:
        return MISSING
    return babel_dates.format_date(value, format=length, locale=language)


def moment(value: datetime | None, language: Language, length: str = "medium") -> str:
    """Returns a time in UTC with its date: "20 nov. 2026, 09:15" (fr); naive times are taken as UTC."""
    if value is None:
        return MISSING
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return babel_dates.format_datetime(aware, format=length, tzinfo=UTC, locale=language)
