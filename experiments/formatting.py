"""Numbers, dates and sentences as a reader of each language writes them: 1 234,5 and 25,64 € in French,
1,234.5 and €25.64 in English. The one place where a figure becomes text, for the console, the report and
the portal.

A value that is missing or not a finite number is written as an em dash: never "None", "nan" or "inf".

Sentences the domain writes (a recommendation's reasons, the scorecard's labels and details) are kept
language-neutral as a `Message`: a template marked for the catalog (`N_`) and its parameters, each a
`Figure` that says what kind of value it is. `render` writes one in a language, so the board's page and
its report say the same thing in French or in English, and a snapshot stores the message, not one
language's text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any, Literal, NamedTuple, get_args

from babel import Locale
from babel import dates as babel_dates
from babel import numbers as babel_numbers

from experiments.i18n import N_, Language, Nn_, translate, translate_plural

#: What a missing or non-finite value is written as, in every language.
MISSING = "—"
#: p-values below this are written "< 0.001": more digits would only suggest a precision nobody has.
SMALLEST_P_VALUE = 0.001
#: The minus sign of signed figures (U+2212: the hyphen is too short beside digits).
MINUS = "−"


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


def significant(value: float | None, language: Language, digits: int = 3) -> str:
    """Returns a measured figure rounded to about `digits` significant digits: 3.779 -> "3.78",
    1211.4 -> "1,211", 0.01234 -> "0.0123"; a whole number stays whole."""
    if value is None or not _finite(value):
        return MISSING
    if value == 0 or float(value).is_integer():
        return number(value, language, 0)
    magnitude = math.floor(math.log10(abs(value)))
    return number(value, language, max(0, digits - 1 - magnitude))


def signed_number(value: float | None, language: Language, digits: int = 3) -> str:
    """Returns a difference with its sign: "+0.024" (en), "−1,5" (fr)."""
    if value is None or not _finite(value):
        return MISSING
    text = significant(abs(value), language, digits)
    return ("+" if value > 0 else MINUS if value < 0 else "") + text


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
    """Returns a relative change with its sign: "+5,2 %" (fr), "−3.0%" (en)."""
    if value is None or not _finite(value):
        return MISSING
    text = share(abs(value), language, decimals)
    return ("+" if value > 0 else MINUS if value < 0 else "") + text


def effect(value: float | None, difference: str, language: Language) -> str:
    """Returns an effect on the experiment's scale: "+8.1%" (relative) or "+0.012" (absolute)."""
    return signed_share(value, language) if difference == "relative" else signed_number(value, language)


def amount(value: float | None, difference: str, language: Language) -> str:
    """Returns a size on the experiment's scale, without sign: "2.0%" (relative) or "0.02" (absolute)."""
    if value is None or not _finite(value):
        return MISSING
    return share(abs(value), language, 1) if difference == "relative" else significant(abs(value), language)


def metric_value(value: float | None, metric_type: str, language: Language) -> str:
    """Returns a metric's value per participant: a share for proportion and retention metrics ("55%"),
    a figure otherwise ("3.78")."""
    if metric_type in ("proportion", "retention"):
        return share(value, language)
    return significant(value, language)


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


def p_is(p: float | None, language: Language) -> str:
    """Returns a p-value as an equation: "p = 0,042", "p < 0,001" (fr); the dash when there is none."""
    if p is None or not _finite(p):
        return MISSING
    written = p_value(p, language)
    return "p " + written if written.startswith("<") else "p = " + written


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


def moment_text(value: str | None, language: Language) -> str:
    """Returns a time written in ISO 8601 ("2026-11-20T09:15:02Z", as snapshots keep them) as `moment` does."""
    if not value:
        return MISSING
    try:
        return moment(datetime.fromisoformat(value.replace("Z", "+00:00")), language)
    except ValueError:
        return value


def day_text(value: str | None, language: Language) -> str:
    """Returns a date written in ISO 8601 ("2026-11-20") as `day` does."""
    if not value:
        return MISSING
    try:
        return day(date.fromisoformat(value[:10]), language)
    except ValueError:
        return value


_UNKNOWN_DAYS = N_("unknown (nobody is being exposed)")
_REACHED = N_("reached")
_ABOUT_DAYS = Nn_("about {n} day", "about {n} days")


def days_to_go(value: float | None, language: Language) -> str:
    """Returns days still needed in words: "about 12 days", "reached" for 0, "unknown" for None."""
    if value is None or not _finite(value):
        return translate(language, _UNKNOWN_DAYS)
    if value <= 0:
        return translate(language, _REACHED)
    n = math.ceil(value)
    return translate_plural(language, *_ABOUT_DAYS, n).format(n=count(n, language))


# --- the lab's vocabulary -----------------------------------------------------------------------

#: The recommendation's and the board's outcomes.
OUTCOMES: dict[str, str] = {
    "go": N_("Go"),
    "no-go": N_("No-go"),
    "iterate": N_("Iterate"),
    "keep running": N_("Keep running"),
}
#: What each outcome asks of the board, in a few words.
OUTCOME_MEANINGS: dict[str, str] = {
    "go": N_("fund the next stage with the treatment named"),
    "no-go": N_("stop the pilot's experiment"),
    "iterate": N_("rework the service and test again"),
    "keep running": N_("not enough evidence yet: keep measuring"),
}
ROLES: dict[str, str] = {"primary": N_("Primary"), "guardrail": N_("Guardrail"), "secondary": N_("Secondary")}
STATUSES: dict[str, str] = {
    "draft": N_("Draft"),
    "running": N_("Running"),
    "stopped": N_("Stopped"),
    "decided": N_("Decided"),
}
STAGES: dict[str, str] = {"prototype": N_("Prototype"), "pilot": N_("Pilot"), "scale": N_("Scale")}
ENGINES: dict[str, str] = {
    "frequentist": N_("Fixed-horizon test (Welch)"),
    "sequential": N_("Sequential test (always-valid intervals)"),
    "bayesian": N_("Bayesian analysis"),
}
CORRECTIONS: dict[str, str] = {
    "none": N_("No correction for multiple comparisons"),
    "holm": N_("Holm correction for multiple comparisons"),
    "bh": N_("Benjamini-Hochberg correction (false discovery rate)"),
}
DIFFERENCES: dict[str, str] = {
    "relative": N_("Relative difference (percent of the control)"),
    "absolute": N_("Absolute difference"),
}
CRITERION_STATUSES: dict[str, str] = {
    "met": N_("met"),
    "missed": N_("missed"),
    "no target": N_("no target"),
    "no data": N_("no data"),
}
AXES: dict[str, str] = {"economic": N_("Economic"), "social": N_("Social"), "human": N_("Human")}
VARIANT_WORD = N_("control")


def term(vocabulary: Mapping[str, str], key: str | None, language: Language) -> str:
    """Returns the word of the lab's vocabulary for `key` in the language (the key itself when unknown,
    the dash for None)."""
    if key is None:
        return MISSING
    message = vocabulary.get(key)
    return key if message is None else translate(language, message)


def interval_name(alpha: float, engine: str, language: Language) -> str:
    """Returns the interval's name: "95% interval", "95% always-valid interval", "95% credible interval"."""
    template = {
        "sequential": N_("{level} always-valid interval"),
        "bayesian": N_("{level} credible interval"),
    }.get(engine, N_("{level} interval"))
    return translate(language, template).format(level=share(1 - alpha, language))


# --- sentences kept language-neutral -------------------------------------------------------------

FigureKind = Literal[
    "text",
    "term",
    "label",
    "count",
    "number",
    "significant",
    "signed_number",
    "share",
    "signed_share",
    "money",
    "p_value",
    "day",
    "message",
    "messages",
]


class Figure(NamedTuple):
    """One parameter of a `Message`: a value and the kind that says how to write it.

    `option` is the decimals of a number or share, the currency of money, the separator of messages.
    A `text` is written as it is (a variant's or a district's name: never translated); a `term` is a
    message of the catalog; a `label` is a text of a spec, one string or one per language."""

    kind: FigureKind
    value: Any
    option: Any = None

    def to_json(self) -> list[Any]:
        """Returns the figure as JSON (a list: kind, value, option)."""
        value = self.value
        if self.kind == "message":
            value = value.to_json()
        elif self.kind == "messages":
            value = [m.to_json() for m in value]
        elif self.kind == "day" and isinstance(value, date):
            value = value.isoformat()
        elif self.kind == "label" and not isinstance(value, (str, dict)):
            value = {language: str(value.text(language)) for language in ("fr", "en")}
        return [self.kind, value, self.option]

    @classmethod
    def from_json(cls, doc: Sequence[Any]) -> Figure:
        """Returns the figure `to_json` wrote."""
        kind, value, option = doc
        if kind == "message":
            value = Message.from_json(value)
        elif kind == "messages":
            value = tuple(Message.from_json(m) for m in value)
        return cls(kind, value, option)


class Message(NamedTuple):
    """A sentence kept language-neutral: a catalog template with `{name}` fields, and its figures.

    With `plural`, the template is the singular and the figure `n` chooses the form."""

    template: str
    figures: tuple[tuple[str, Figure], ...] = ()
    plural: str | None = None

    @classmethod
    def of(cls, template: str | tuple[str, str], **figures: Figure) -> Message:
        """Returns the message of a template (`N_(...)`, or `Nn_(...)` for one with a plural form)."""
        if isinstance(template, tuple):
            return cls(template[0], tuple(figures.items()), template[1])
        return cls(template, tuple(figures.items()))

    def to_json(self) -> dict[str, Any]:
        """Returns the message as JSON (what a snapshot stores)."""
        doc: dict[str, Any] = {"template": self.template, "figures": {k: f.to_json() for k, f in self.figures}}
        if self.plural is not None:
            doc["plural"] = self.plural
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Message:
        """Returns the message `to_json` wrote."""
        figures = tuple((name, Figure.from_json(f)) for name, f in doc.get("figures", {}).items())
        return cls(str(doc["template"]), figures, doc.get("plural"))


def text(value: str) -> Figure:
    """Returns a figure written as it is (a name from a spec or an event)."""
    return Figure("text", value)


def words(message: str) -> Figure:
    """Returns a figure that is a message of the catalog (marked with `N_`), translated where it is shown."""
    return Figure("term", message)


def spec_label(value: object) -> Figure:
    """Returns a figure that is a spec's text (a metric's name...), in one language or in each."""
    return Figure("label", value)


def sentence(message: Message) -> Figure:
    """Returns a message as a figure of another."""
    return Figure("message", message)


#: The separator of notes within a sentence, translated (French writes a space before a semicolon).
NOTES = N_("; ")


def sentences(messages: Sequence[Message], separator: str = NOTES) -> Figure:
    """Returns messages written one after the other, with a separator (translated where it is shown)."""
    return Figure("messages", tuple(messages), separator)


def write(figure: Figure, language: Language) -> str:
    """Returns a figure written in the language."""
    kind, value, option = figure
    if kind == "text":
        return str(value)
    if kind == "term":
        return translate(language, str(value))
    if kind == "label":
        return label_text(value, language)
    if kind == "message":
        return render(value, language)
    if kind == "messages":
        return translate(language, str(option)).join(render(m, language) for m in value)
    if kind == "day":
        return day_text(value, language) if isinstance(value, str) else day(value, language)
    if kind == "money":
        return money(value, str(option), language)
    if kind == "count":
        return count(value, language)
    if kind == "p_value":
        return p_value(value, language)
    if kind == "number":
        return number(value, language, 1 if option is None else int(option))
    if kind == "significant":
        return significant(value, language)
    if kind == "signed_number":
        return signed_number(value, language)
    if kind == "share":
        return share(value, language, 0 if option is None else int(option))
    if kind == "signed_share":
        return signed_share(value, language, 1 if option is None else int(option))
    raise ValueError(f"figure kind == {kind!r}, must be one of {', '.join(get_args(FigureKind))}")


def label_text(value: Any, language: Language) -> str:
    """Returns a spec's text as a snapshot keeps it (one string, or one per language) in the language,
    the other language's when it has none in this one."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        other = "en" if language == "fr" else "fr"
        return str(value.get(language) or value.get(other) or next(iter(value.values()), ""))
    return str(value.text(language))


def render(message: Message | Mapping[str, Any] | str, language: Language) -> str:
    """Returns the message written in the language. A message as JSON is read first; a plain string (the
    English text snapshots stored before messages were kept language-neutral) is returned as it is."""
    if isinstance(message, str):
        return message
    if not isinstance(message, Message):
        message = Message.from_json(message)
    values = {name: write(figure, language) for name, figure in message.figures}
    if message.plural is not None:
        n = dict(message.figures)["n"].value
        template = translate_plural(language, message.template, message.plural, int(n))
    else:
        template = translate(language, message.template)
    return template.format(**values)


def effect_figure(value: float | None, difference: str) -> Figure:
    """Returns an effect as a figure of the experiment's scale: a signed share (relative) or number (absolute)."""
    return Figure("signed_share", value, 1) if difference == "relative" else Figure("signed_number", value)


_INTERVALS = {
    "sequential": N_("{level} always-valid interval {low} to {high}"),
    "bayesian": N_("{level} credible interval {low} to {high}"),
}


def observation(
    value: float,
    low: float,
    high: float,
    *,
    difference: str,
    alpha: float,
    engine: str,
    control: str,
    chance_better: float | None = None,
    higher_is_better: bool = True,
    method: str | None = None,
) -> Message:
    """Returns an effect with its interval as the board reads it: "+8.1% (95% interval +1.2% to +15.0%)",
    with the method of a relative interval (a catalog term: "the Fieller method"), the chance of beating
    the control (Bayesian engine) and a note when lower is better."""
    interval = Message.of(
        _INTERVALS.get(engine, N_("{level} interval {low} to {high}")),
        level=Figure("share", 1 - alpha),
        low=effect_figure(low, difference),
        high=effect_figure(high, difference),
    )
    if method is not None:
        interval = Message.of(N_("{interval} by {method}"), interval=sentence(interval), method=words(method))
    notes = [interval]
    if chance_better is not None:
        notes.append(
            Message.of(
                N_("{chance} chance to beat {control}"), chance=Figure("share", chance_better, 1), control=text(control)
            )
        )
    if not higher_is_better:
        notes.append(Message.of(N_("lower is better")))
    return Message.of(N_("{effect} ({notes})"), effect=effect_figure(value, difference), notes=sentences(notes))


def english(message: Message) -> str:
    """Returns the message in English (logs, the command line)."""
    return render(message, "en")
