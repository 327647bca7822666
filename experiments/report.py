"""The one-page decision report, in HTML and PDF, in French or English, rendered from a snapshot's content.

The report shows what the board saw (`board.snapshot_content`): a one-minute summary (what was tested,
the primary metric from control to treatment, the recommendation and its reasons), the key results,
the scorecard on three axes, the forest plot of effects and the adoption curve with its Bass forecast,
the decision when one was recorded, the statistical settings, and the snapshot's SHA-256 digest.
Charts are Altair (Vega-Lite) specifications rendered locally by vl-convert: inline SVG in the HTML
(no script, no network), PNG in the PDF (fpdf2).

The wording of effects (`plain_effect`), the summary (`summary`) and the two charts the report shares
with the console (`forest_chart`, `adoption_chart`) live here so that the console and the report say
and draw the same thing. Every text is taken from the `console` catalog and every figure written by
`experiments.formatting`; texts that come from a spec or from citizens are escaped in the HTML.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import altair as alt
import pandas as pd
from babel import Locale

from experiments import formatting as fmt
from experiments.adoption import Forecast
from experiments.i18n import Language, name_of, translator
from experiments.registry import ExperimentSpec

#: Where a Unicode TrueType font is looked for (DejaVu ships with Debian and most Linux images);
#: without one the PDF falls back to the core Helvetica font and Latin-1 text.
PDF_FONTS = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/TTF/DejaVuSans.ttf"),
)
OUTCOME_COLOURS = {"go": "#1a7f37", "no-go": "#cf222e", "iterate": "#9a6700", "keep running": "#0969da"}
ROLE_ORDER = ("primary", "guardrail", "secondary")
ROLE_COLOURS = ("#0969da", "#cf222e", "#6e7781")
#: What the chart builders return (a layered chart's `properties` may also give a facet chart).
AnyChart = alt.Chart | alt.LayerChart | alt.FacetChart
CHART_WIDTH = 330
CHART_HEIGHT = 190
#: Each comparison of the forest plot gets a row this high; the axes and the legend get the rest.
FOREST_ROW = 34
FOREST_FRAME = 90
#: The most days a chart draws: the latest ones. A date far in the past (an event of the year 4 on a
#: partition without a newer one) would otherwise make a chart of hundreds of thousands of points.
PLOTTED_DAYS = 400


# --- wording ------------------------------------------------------------------------------------


def signed(value: float | None, difference: str, language: Language = "en") -> str:
    """Returns an effect as the lab writes it: "+8.1%" (relative) or "+0.012" (absolute); a dash for None."""
    return fmt.effect(value, difference, language)


def interval_label(alpha: float, engine: str, language: Language = "en") -> str:
    """Returns the interval's name: "95% interval", "95% always-valid interval" or "95% credible interval"."""
    return fmt.interval_name(alpha, engine, language)


class EffectStatement(NamedTuple):
    """A comparison said in words: `verdict` is better, worse, unclear or error (better/worse
    follow the metric's direction), `text` the sentence a board member reads."""

    verdict: str
    text: str


def _field(row: Mapping[str, Any] | Any, name: str) -> Any:
    """Returns a comparison row's field, whether the row is a JSON object or a typed record."""
    return row.get(name) if isinstance(row, Mapping) else getattr(row, name)


def plain_effect(
    row: Mapping[str, Any] | Any,
    *,
    control: str,
    difference: str,
    alpha: float,
    engine: str,
    correction: str = "none",
    higher_is_better: bool = True,
    metric_name: str | None = None,
    language: Language = "en",
) -> EffectStatement:
    """Returns one comparison row in plain words, e.g. "guided beats control on Trips completed by
    +8.1% (95% interval +1.0% to +15.0%)".

    A difference is called clear when the interval excludes 0 (and, under a multiple-comparison
    correction, the adjusted p-value is below alpha); under the Bayesian engine when the chance to
    beat the control is at least 1 - alpha (or at most alpha).
    """
    _ = translator(language)
    variant = _field(row, "variant")
    metric = metric_name or _field(row, "metric")
    effect, low, high = _field(row, "effect"), _field(row, "ci_low"), _field(row, "ci_high")
    error = _field(row, "error")
    names = {"variant": variant, "control": control, "metric": metric}
    if error is not None or effect is None or low is None or high is None:
        text = _("{variant} vs {control} on {metric}: cannot be computed ({error}).")
        return EffectStatement("error", text.format(error=error or fmt.MISSING, **names))
    chance = _field(row, "chance_to_win")
    if engine == "bayesian" and chance is not None:
        up, down = chance >= 1 - alpha, chance <= alpha
    else:
        adjusted = _field(row, "adjusted_p_value")
        survives = correction == "none" or adjusted is None or adjusted < alpha
        up, down = low > 0 and survives, high < 0 and survives
    better = None if chance is None or engine != "bayesian" else (chance if higher_is_better else 1 - chance)
    said = fmt.render(
        fmt.observation(
            effect,
            low,
            high,
            difference=difference,
            alpha=alpha,
            engine=engine,
            control=control,
            chance_better=better,
            higher_is_better=higher_is_better,
        ),
        language,
    )
    good, bad = (up, down) if higher_is_better else (down, up)
    if good:
        return EffectStatement(
            "better", _("{variant} beats {control} on {metric} by {said}.").format(said=said, **names)
        )
    if bad:
        return EffectStatement(
            "worse", _("{variant} does worse than {control} on {metric}: {said}.").format(said=said, **names)
        )
    text = _("No clear difference yet between {variant} and {control} on {metric}: {said}.")
    return EffectStatement("unclear", text.format(said=said, **names))


def describe(row: Mapping[str, Any] | Any, experiment: ExperimentSpec, language: Language = "en") -> EffectStatement:
    """Returns one comparison row in plain words under the experiment's analysis plan."""
    plan = experiment.analysis
    metric = next((mk for mk in experiment.metrics if mk.key == _field(row, "metric")), None)
    return plain_effect(
        row,
        control=experiment.control,
        difference=plan.difference,
        alpha=plan.alpha,
        engine=plan.engine,
        correction=plan.correction,
        higher_is_better=True if metric is None else metric.higher_is_better,
        metric_name=None if metric is None else name_of(metric, language),
        language=language,
    )


def metric_roles(primary: str, guardrails: Iterable[str], metrics: Iterable[str]) -> dict[str, str]:
    """Returns each metric's role: primary, guardrail or secondary."""
    guards = set(guardrails)
    return {key: "primary" if key == primary else "guardrail" if key in guards else "secondary" for key in metrics}


def headline(content: Mapping[str, Any], language: Language = "en") -> str:
    """Returns the recommendation in one sentence, e.g. "Recommendation: Go with guided"."""
    _ = translator(language)
    advice = content["recommendation"]
    outcome = fmt.term(fmt.OUTCOMES, advice["outcome"], language)
    if advice["outcome"] == "go" and advice["variant"]:
        return _("Recommendation: {outcome} with {variant}").format(outcome=outcome, variant=advice["variant"])
    if advice["outcome"] == "keep running" and advice["expected_days"] is not None:
        days = fmt.days_to_go(advice["expected_days"], language)
        return _("Recommendation: {outcome} ({days} to the planned sample)").format(outcome=outcome, days=days)
    return _("Recommendation: {outcome}").format(outcome=outcome)


def reason_texts(content: Mapping[str, Any], language: Language) -> list[str]:
    """Returns the recommendation's reasons written in the language (a snapshot before schema 2 kept
    them in English only)."""
    return [fmt.render(r.get("message", r.get("text", "")), language) for r in content["recommendation"]["reasons"]]


class Summary(NamedTuple):
    """The one-minute summary: what was tested, the primary metric from control to treatment in
    absolute terms, the recommendation and its reasons, each already written in one language."""

    tested: str
    hypothesis: str
    primary: str
    recommendation: str
    reasons: tuple[str, ...]


def _names(content: Mapping[str, Any], language: Language) -> dict[str, str]:
    """Returns each metric's name in the language, its key when the snapshot has none."""
    return {mk["key"]: fmt.label_text(mk.get("name"), language) or mk["key"] for mk in content["experiment"]["metrics"]}


def summary(content: Mapping[str, Any], language: Language) -> Summary:
    """Returns the one-minute summary of what the board sees."""
    _ = translator(language)
    exp = content["experiment"]
    names = _names(content, language)
    units = {v: d.get("units", 0) for v, d in content["results"]["variants"].items()}
    treatments = [v for v in units if v != exp["control"]]
    tested = _("{experiment}: {treatments} against {control}, on {participants} participants so far.").format(
        experiment=fmt.label_text(exp.get("name"), language) or exp["key"],
        treatments=", ".join(treatments),
        control=exp["control"],
        participants=fmt.count(sum(units.values()), language),
    )
    kind = next((mk["type"] for mk in exp["metrics"] if mk["key"] == exp["primary"]), "mean")
    rows = [
        r
        for r in content["results"]["analysis"]["comparisons"]
        if r["metric"] == exp["primary"] and r["control_mean"] is not None
    ]
    chosen = content["recommendation"].get("variant")
    rows.sort(
        key=lambda r: (r["variant"] != chosen, treatments.index(r["variant"]) if r["variant"] in treatments else 0)
    )
    primary = ""
    if rows:
        steps = " · ".join(
            _("{treatment_value} with {variant}").format(
                treatment_value=fmt.metric_value(r["mean"], kind, language), variant=r["variant"]
            )
            for r in rows
        )
        primary = _("{metric}: {control_value} with {control} → {steps}").format(
            metric=names.get(exp["primary"], exp["primary"]),
            control_value=fmt.metric_value(rows[0]["control_mean"], kind, language),
            control=exp["control"],
            steps=steps,
        )
    return Summary(
        tested,
        fmt.label_text(exp.get("hypothesis"), language),
        primary,
        headline(content, language),
        tuple(reason_texts(content, language)),
    )


# --- charts -------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def vega_locale(language: Language) -> dict[str, Any]:
    """Returns the Vega number and time locale of the language (decimal mark, digit grouping, percent
    sign, month and day names), so chart axes write figures as the rest of the page does."""
    locale = Locale.parse(language)
    symbols = locale.number_symbols["latn"]
    percent = fmt.share(0.0, language).replace("0", "", 1)
    days = locale.days["format"]
    # d3 counts days from Sunday, Babel from Monday.
    order = [6, 0, 1, 2, 3, 4, 5]
    return {
        "number": {
            "decimal": symbols["decimal"],
            "thousands": symbols["group"],
            "grouping": [3],
            "currency": ["", ""],
            "percent": percent,
            "minus": fmt.MINUS,
        },
        "time": {
            "dateTime": "%x, %X",
            "date": "%d/%m/%Y" if language == "fr" else "%m/%d/%Y",
            "time": "%H:%M:%S",
            "periods": ["AM", "PM"],
            "days": [days["wide"][i] for i in order],
            "shortDays": [days["abbreviated"][i] for i in order],
            "months": [locale.months["format"]["wide"][i] for i in range(1, 13)],
            "shortMonths": [locale.months["format"]["abbreviated"][i] for i in range(1, 13)],
        },
    }


def localised(chart: AnyChart, language: Language) -> AnyChart:
    """Returns the chart configured to write numbers and dates in the language."""
    configured: AnyChart = chart.configure(locale=vega_locale(language))
    return configured


def plotted(points: Sequence[tuple[date, Any]]) -> list[tuple[date, Any]]:
    """Returns the points of a daily series a chart draws: the latest `PLOTTED_DAYS` days at most."""
    if not points:
        return []
    first = points[-1][0] - timedelta(days=PLOTTED_DAYS - 1)
    return [p for p in points if p[0] >= first]


def forest_chart(
    rows: Sequence[Mapping[str, Any] | Any],
    roles: Mapping[str, str],
    *,
    difference: str,
    alpha: float,
    engine: str,
    minimum_effect: float | None = None,
    names: Mapping[str, str] | None = None,
    limits: Mapping[str, float] | None = None,
    language: Language = "en",
    width: int | None = CHART_WIDTH,
) -> AnyChart:
    """Returns the forest plot: one row per (metric, treatment) with its effect and interval, full
    labels, on one axis with 0 (no difference), the minimum effect required for go and each
    guardrail's limit (`limits`: the worst effect each guardrail metric tolerates, on the raw scale).
    The chart is as high as its rows need."""
    _ = translator(language)
    get = _field
    names = names or {}
    limits = limits or {}
    records = []
    for r in rows:
        effect, low, high = get(r, "effect"), get(r, "ci_low"), get(r, "ci_high")
        if effect is None or low is None or high is None:
            continue
        metric = get(r, "metric")
        role = roles.get(metric, "secondary")
        records.append(
            {
                "comparison": f"{names.get(metric, metric)} · {get(r, 'variant')}",
                "role": fmt.term(fmt.ROLES, role, language),
                "rank": ROLE_ORDER.index(role),
                "effect": effect,
                "low": low,
                "high": high,
                "said": _("{effect} ({low} to {high})").format(
                    effect=signed(effect, difference, language),
                    low=signed(low, difference, language),
                    high=signed(high, difference, language),
                ),
                "limit": limits.get(metric),
            }
        )
    frame = pd.DataFrame.from_records(
        records, columns=["comparison", "role", "rank", "effect", "low", "high", "said", "limit"]
    )
    axis_format = ".0%" if difference == "relative" else ",.3~g"
    title = _("Effect against the control ({interval})").format(interval=interval_label(alpha, engine, language))
    y = alt.Y(
        "comparison:N",
        title=None,
        sort=alt.EncodingSortField("rank"),
        axis=alt.Axis(labelLimit=0, labelFontSize=12),
    )
    colour = alt.Color(
        "role:N",
        scale=alt.Scale(domain=[fmt.term(fmt.ROLES, r, language) for r in ROLE_ORDER], range=list(ROLE_COLOURS)),
        title=_("Role"),
        legend=alt.Legend(orient="bottom"),
    )
    base = alt.Chart(frame)
    tooltip = [
        alt.Tooltip("comparison:N", title=_("Comparison")),
        alt.Tooltip("role:N", title=_("Role")),
        alt.Tooltip("said:N", title=_("Effect")),
    ]
    bars = base.mark_rule(strokeWidth=3).encode(
        x=alt.X("low:Q", title=title, axis=alt.Axis(format=axis_format)), x2="high:Q", y=y, color=colour
    )
    points = base.mark_point(filled=True, size=80).encode(x="effect:Q", y=y, color=colour, tooltip=tooltip)
    layers: list[alt.Chart] = [bars, points]
    lines = [{"at": 0.0, "what": _("no difference")}]
    if minimum_effect:
        lines.append({"at": minimum_effect, "what": _("minimum effect for go")})
    marks = pd.DataFrame(lines)
    layers.append(
        alt.Chart(marks)
        .mark_rule(strokeDash=[4, 3], color="#57606a")
        .encode(x="at:Q", tooltip=[alt.Tooltip("what:N", title=_("Line"))])
    )
    # One label under the other: 0 and a small minimum effect are a few pixels apart.
    for line, row in enumerate(lines):
        layers.append(
            alt.Chart(pd.DataFrame([row]))
            .mark_text(align="left", baseline="top", dx=4, dy=2 + 13 * line, fontSize=11, color="#57606a")
            .encode(x="at:Q", y=alt.value(0), text="what:N")
        )
    guarded = frame[frame["limit"].notna()]
    if len(guarded):
        guard = alt.Chart(guarded)
        layers.append(
            guard.mark_tick(color="#cf222e", thickness=3, size=22).encode(
                x="limit:Q", y=y, tooltip=[alt.Tooltip("limit:Q", title=_("guardrail limit"), format=axis_format)]
            )
        )
        layers.append(
            guard.mark_text(align="right", dx=-5, dy=-9, fontSize=10, color="#cf222e").encode(
                x="limit:Q", y=y, text=alt.value(_("guardrail limit"))
            )
        )
    height = FOREST_ROW * max(1, len(frame))
    chart = alt.layer(*layers).properties(height=height)
    sized: AnyChart = chart.properties(width=width) if width else chart
    return sized


def adoption_chart(
    cumulative: Sequence[Sequence[float]],
    forecast: Forecast | None,
    *,
    start: date | None = None,
    language: Language = "en",
    width: int | None = CHART_WIDTH,
) -> AnyChart:
    """Returns the adoption curve: cumulative adopters per day, with the Bass forecast and its band when
    a fit exists. With `start` (the day the days are counted from) the axis shows dates."""
    _ = translator(language)
    observed_label, forecast_label = _("observed"), _("Bass forecast")
    observed = [(float(d), float(n)) for d, n in cumulative]
    if observed:
        last = observed[-1][0]
        observed = [(d, n) for d, n in observed if d >= last - (PLOTTED_DAYS - 1)]

    def when(day: float) -> Any:
        return (start + timedelta(days=day)).isoformat() if start is not None else day

    x = (
        alt.X("when:T", title=_("Day"))
        if start is not None
        else alt.X("when:Q", title=_("Days since the pilot started"))
    )
    series = [(when(d), n, observed_label) for d, n in observed]
    layers: list[alt.Chart] = []
    if forecast is not None:
        band = pd.DataFrame(
            {
                "when": [when(d) for d in forecast.days],
                "low": forecast.low,
                "high": forecast.high,
            }
        )
        level = _("{level} band").format(level=fmt.share(forecast.level, language))
        layers.append(
            alt.Chart(band)
            .mark_area(opacity=0.18, color="#0969da")
            .encode(
                x=x,
                y="low:Q",
                y2="high:Q",
                tooltip=[
                    alt.Tooltip("when:T" if start is not None else "when:Q", title=_("Day")),
                    alt.Tooltip("low:Q", format=",.0f", title=_("{band}: low").format(band=level)),
                    alt.Tooltip("high:Q", format=",.0f", title=_("{band}: high").format(band=level)),
                ],
            )
        )
        series += [(when(d), a, forecast_label) for d, a in zip(forecast.days, forecast.adopters, strict=True)]
    frame = pd.DataFrame(series, columns=["when", "adopters", "series"])
    layers.append(
        alt.Chart(frame)
        .mark_line(point=alt.OverlayMarkDef(size=18))
        .encode(
            x=x,
            y=alt.Y("adopters:Q", title=_("Cumulative adopters")),
            color=alt.Color(
                "series:N",
                title=None,
                scale=alt.Scale(domain=[observed_label, forecast_label], range=["#1a7f37", "#0969da"]),
                legend=alt.Legend(orient="bottom"),
            ),
            strokeDash=alt.StrokeDash(
                "series:N",
                scale=alt.Scale(domain=[observed_label, forecast_label], range=[[1, 0], [5, 3]]),
                legend=None,
            ),
            tooltip=[
                alt.Tooltip("when:T" if start is not None else "when:Q", title=_("Day")),
                alt.Tooltip("series:N", title=_("Curve")),
                alt.Tooltip("adopters:Q", format=",.0f", title=_("Adopters")),
            ],
        )
    )
    chart = alt.layer(*layers).properties(height=CHART_HEIGHT)
    sized: AnyChart = chart.properties(width=width) if width else chart
    return sized


def _forecast_of(content: Mapping[str, Any]) -> Forecast | None:
    doc = content["adoption"].get("forecast")
    if not doc:
        return None
    return Forecast(
        tuple(doc["days"]),
        tuple(math.nan if a is None else a for a in doc["adopters"]),
        tuple(math.nan if a is None else a for a in doc["low"]),
        tuple(math.nan if a is None else a for a in doc["high"]),
        doc["level"],
    )


def _start_of(content: Mapping[str, Any]) -> date | None:
    text = content["adoption"].get("start") or content["pilot"].get("start")
    return date.fromisoformat(text[:10]) if text else None


def _limits(lower_is_better: set[str], guardrails: Iterable[tuple[str, float]]) -> dict[str, float]:
    return {metric: tolerance if metric in lower_is_better else -tolerance for metric, tolerance in guardrails}


def guardrail_limits(content_experiment: Mapping[str, Any]) -> dict[str, float]:
    """Returns the worst effect each guardrail metric tolerates, on the comparison's raw scale (a
    snapshot's experiment)."""
    return _limits(
        {mk["key"] for mk in content_experiment["metrics"] if not mk["higher_is_better"]},
        ((g["metric"], g["tolerance"]) for g in content_experiment["guardrails"]),
    )


def spec_limits(experiment: ExperimentSpec) -> dict[str, float]:
    """Returns `guardrail_limits` of an experiment's spec."""
    return _limits(
        {mk.key for mk in experiment.metrics if not mk.higher_is_better},
        ((g.metric, g.tolerance) for g in experiment.guardrails),
    )


def report_charts(content: Mapping[str, Any], language: Language = "en") -> tuple[AnyChart, AnyChart]:
    """Returns the report's forest and adoption charts, drawn from a snapshot's content."""
    exp = content["experiment"]
    roles = metric_roles(exp["primary"], [g["metric"] for g in exp["guardrails"]], [mk["key"] for mk in exp["metrics"]])
    forest = forest_chart(
        content["results"]["analysis"]["comparisons"],
        roles,
        difference=exp["difference"],
        alpha=exp["alpha"],
        engine=exp["engine"],
        minimum_effect=exp["minimum_effect"],
        names=_names(content, language),
        limits=guardrail_limits(exp),
        language=language,
        width=2 * CHART_WIDTH,
    )
    adoption = adoption_chart(
        content["adoption"]["cumulative_adopters"],
        _forecast_of(content),
        start=_start_of(content),
        language=language,
        width=2 * CHART_WIDTH,
    )
    return localised(forest, language), localised(adoption, language)


# --- what the report says -----------------------------------------------------------------------


class ResultLine(NamedTuple):
    """One line of the key results table, written in one language."""

    metric: str
    role: str
    variant: str
    control_mean: str
    mean: str
    effect: str
    interval: str
    evidence: str
    statement: str
    rank: int


def result_lines(content: Mapping[str, Any], language: Language = "en") -> list[ResultLine]:
    """Returns the key results: one line per (metric, treatment), primary and guardrails first."""
    _ = translator(language)
    exp = content["experiment"]
    direction = {mk["key"]: mk["higher_is_better"] for mk in exp["metrics"]}
    kinds = {mk["key"]: mk["type"] for mk in exp["metrics"]}
    names = _names(content, language)
    roles = metric_roles(exp["primary"], [g["metric"] for g in exp["guardrails"]], direction)
    difference = exp["difference"]
    lines = []
    for row in content["results"]["analysis"]["comparisons"]:
        metric = row["metric"]
        said = plain_effect(
            row,
            control=exp["control"],
            difference=difference,
            alpha=exp["alpha"],
            engine=exp["engine"],
            correction=exp["correction"],
            higher_is_better=direction.get(metric, True),
            metric_name=names.get(metric, metric),
            language=language,
        )
        if exp["engine"] == "bayesian":
            chance = row["chance_to_win"]
            evidence = (
                fmt.MISSING
                if chance is None
                else _("{chance} chance to win").format(chance=fmt.share(chance, language, 1))
            )
        else:
            p = row["adjusted_p_value"] if exp["correction"] != "none" else row["p_value"]
            evidence = fmt.p_is(p, language)
        role = roles.get(metric, "secondary")
        kind = kinds.get(metric, "mean")
        lines.append(
            ResultLine(
                names.get(metric, metric),
                fmt.term(fmt.ROLES, role, language),
                row["variant"],
                fmt.metric_value(row["control_mean"], kind, language),
                fmt.metric_value(row["mean"], kind, language),
                signed(row["effect"], difference, language),
                _("{low} to {high}").format(
                    low=signed(row["ci_low"], difference, language), high=signed(row["ci_high"], difference, language)
                ),
                evidence,
                said.text,
                ROLE_ORDER.index(role),
            )
        )
    return sorted(lines, key=lambda line: line.rank)


class CriterionLine(NamedTuple):
    """A scorecard criterion written in one language: its label, the value observed, its target
    ("≥ 10,000", a dash without one), its status and the detail behind it."""

    label: str
    observed: str
    target: str
    status: str
    detail: str


def _criterion_value(criterion: Mapping[str, Any], value: float | None, language: Language) -> str:
    kind, option = criterion.get("unit") or ("significant", None)
    return fmt.write(fmt.Figure(kind, value, option), language)  # type: ignore[arg-type]


def criterion_line(criterion: Mapping[str, Any], language: Language) -> CriterionLine:
    """Returns a criterion as a snapshot keeps it (`Criterion.to_json`) written in the language."""
    _ = translator(language)
    target = fmt.MISSING
    if criterion["target"] is not None:
        bound = _("≥ {target}") if criterion["comparison"] == ">=" else _("≤ {target}")
        target = bound.format(target=_criterion_value(criterion, criterion["target"], language))
    observed = (
        fmt.term(fmt.CRITERION_STATUSES, "no data", language)
        if criterion["observed"] is None
        else _criterion_value(criterion, criterion["observed"], language)
    )
    return CriterionLine(
        fmt.render(criterion["label"], language),
        observed,
        target,
        fmt.term(fmt.CRITERION_STATUSES, criterion["status"], language),
        fmt.render(criterion["detail"], language),
    )


def scorecard_lines(content: Mapping[str, Any], language: Language = "en") -> list[tuple[str, str, str, str, str]]:
    """Returns the scorecard as (axis, criterion, observed, target, status) lines in the language."""
    return [
        (fmt.term(fmt.AXES, axis, language), line.label, line.observed, line.target, line.status)
        for axis in ("economic", "social", "human")
        for line in (criterion_line(c, language) for c in content["scorecard"][axis]["criteria"])
    ]


def _statuses(content: Mapping[str, Any]) -> list[str]:
    return [c["status"] for axis in ("economic", "social", "human") for c in content["scorecard"][axis]["criteria"]]


def _axis_score(content: Mapping[str, Any], axis: str, language: Language) -> str:
    _ = translator(language)
    score = content["scorecard"][axis]["score"]
    if score is None:
        return _("{axis}: no target").format(axis=fmt.term(fmt.AXES, axis, language))
    return _("{axis}: {share} of targets met").format(
        axis=fmt.term(fmt.AXES, axis, language), share=fmt.share(score, language)
    )


def _decision_lines(decision: Any, language: Language) -> list[tuple[str, str]]:
    """Returns the recorded decision as (label, value) lines."""
    _ = translator(language)
    return [
        (
            _("Decision"),
            _("{outcome} (recommended: {recommended})").format(
                outcome=fmt.term(fmt.OUTCOMES, decision.outcome, language),
                recommended=fmt.term(fmt.OUTCOMES, decision.recommendation, language),
            ),
        ),
        (_("Rationale"), decision.rationale),
        (_("Members present"), ", ".join(decision.members)),
        (_("Conditions"), decision.conditions or _("none")),
        (
            _("Recorded by"),
            _("{who}, {when} (UTC)").format(who=decision.recorded_by, when=fmt.moment(decision.at, language)),
        ),
    ]


def settings_lines(content: Mapping[str, Any], language: Language) -> list[tuple[str, str]]:
    """Returns the statistical settings behind a snapshot's figures, as (label, value) lines."""
    exp = content["experiment"]
    return analysis_settings(
        engine=exp["engine"],
        difference=exp["difference"],
        alpha=exp["alpha"],
        correction=exp["correction"],
        minimum_effect=exp["minimum_effect"],
        srm=content["results"]["analysis"]["srm"],
        as_of=content["as_of"],
        language=language,
    )


def analysis_settings(
    *,
    engine: str,
    difference: str,
    alpha: float,
    correction: str,
    minimum_effect: float,
    srm: Mapping[str, Any],
    as_of: str | None,
    language: Language,
) -> list[tuple[str, str]]:
    """Returns the statistical settings of an analysis, as (label, value) lines in the language."""
    _ = translator(language)
    srm_text = fmt.p_is(srm["p_value"], language)
    if srm["mismatch"]:
        srm_text = _("{p}: MISMATCH, the split of participants is not the planned one").format(p=srm_text)
    lines = [
        (_("Analysis"), fmt.term(fmt.ENGINES, engine, language)),
        (_("Difference"), fmt.term(fmt.DIFFERENCES, difference, language)),
        (_("Risk of a false discovery (alpha)"), fmt.share(alpha, language, 1)),
        (_("Multiple comparisons"), fmt.term(fmt.CORRECTIONS, correction, language)),
        (_("Minimum effect for go"), signed(minimum_effect, difference, language)),
        (_("Sample ratio check (SRM)"), srm_text),
    ]
    if as_of:
        lines.append((_("Figures as of"), fmt.moment_text(as_of, language)))
    return lines


def _meta(content: Mapping[str, Any], language: Language) -> str:
    _ = translator(language)
    pilot, exp = content["pilot"], content["experiment"]
    return _(
        "Pilot {pilot} · stage {stage} · experiment {experiment} ({status}) · next decision {next} · "
        "figures as of {as_of}"
    ).format(
        pilot=fmt.label_text(pilot["name"], language),
        stage=fmt.term(fmt.STAGES, pilot["stage"], language),
        experiment=exp["key"],
        status=fmt.term(fmt.STATUSES, exp["status"], language),
        next=fmt.day_text(pilot["next_decision"], language) if pilot["next_decision"] else _("not set"),
        as_of=fmt.moment_text(content["as_of"], language),
    )


def _title(content: Mapping[str, Any], language: Language) -> str:
    _ = translator(language)
    exp = content["experiment"]
    return _("Decision report: {pilot} / {experiment}").format(
        pilot=fmt.label_text(content["pilot"]["name"], language),
        experiment=fmt.label_text(exp.get("name"), language) or exp["key"],
    )


# --- HTML ---------------------------------------------------------------------------------------


def _svg(chart: AnyChart) -> str:
    import vl_convert as vlc

    return str(vlc.vegalite_to_svg(chart.to_dict()))


def _png(chart: AnyChart) -> bytes:
    import vl_convert as vlc

    return bytes(vlc.vegalite_to_png(chart.to_dict(), scale=2))


_CSS = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#1f2328;font-size:14px;padding:0 12px}
h1{font-size:20px;margin:0 0 4px}
h2{font-size:15px;margin:18px 0 6px;border-bottom:1px solid #d0d7de}
.meta{color:#57606a;font-size:12px}
.outcome{font-size:18px;font-weight:600;padding:8px 12px;border-radius:6px;color:#fff;display:inline-block}
.summary{background:#f6f8fa;padding:8px 12px;border-radius:6px}
table{border-collapse:collapse;width:100%;font-size:12px}
td,th{border:1px solid #d0d7de;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f6f8fa}
.charts svg{max-width:100%;height:auto}
.met{color:#1a7f37}
.missed{color:#cf222e}
.digest{font-family:ui-monospace,monospace;font-size:11px;word-break:break-all}
.decision{background:#f6f8fa;padding:8px;border-radius:6px}
"""


def _rows(cells: Iterable[Sequence[str]], header: Sequence[str], classes: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(cells):
        css = f' class="{html.escape(classes[i])}"' if classes else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _result_header(content: Mapping[str, Any], language: Language) -> list[str]:
    _ = translator(language)
    exp = content["experiment"]
    return [
        _("Metric"),
        _("Role"),
        _("Variant"),
        _("Control"),
        _("Variant's value"),
        _("Effect"),
        interval_label(exp["alpha"], exp["engine"], language).capitalize(),
        _("Evidence"),
    ]


def render_html(content: Mapping[str, Any], digest: str, decision: Any | None = None, language: Language = "en") -> str:
    """Returns the one-page decision report as a self-contained HTML document (charts as inline SVG)."""
    _ = translator(language)
    e = html.escape
    advice = content["recommendation"]
    forest, adoption = report_charts(content, language)
    colour = OUTCOME_COLOURS.get(advice["outcome"], "#57606a")
    said = summary(content, language)
    results = result_lines(content, language)
    card = scorecard_lines(content, language)
    axes = " · ".join(_axis_score(content, axis, language) for axis in ("economic", "social", "human"))
    decision_html = ""
    if decision is not None:
        decision_html = (
            f"<h2>{e(_('Board decision'))}</h2><div class='decision'>"
            + "".join(f"<p><b>{e(k)}:</b> {e(v)}</p>" for k, v in _decision_lines(decision, language))
            + "</div>"
        )
    primary = f"<p><b>{e(said.primary)}</b></p>" if said.primary else ""
    hypothesis = f"<p>{e(_('Hypothesis'))}: {e(said.hypothesis)}</p>" if said.hypothesis else ""
    table = _rows(
        ([r.metric, r.role, r.variant, r.control_mean, r.mean, r.effect, r.interval, r.evidence] for r in results),
        _result_header(content, language),
    )
    statements = "".join(f"<li>{e(r.statement)}</li>" for r in results if r.rank < 2)
    scorecard = _rows(
        card,
        [_("Axis"), _("Criterion"), _("Observed"), _("Target"), _("Status")],
        [s.replace(" ", "-") for s in _statuses(content)],
    )
    settings = _rows(settings_lines(content, language), [_("Setting"), _("Value")])
    return f"""<!DOCTYPE html>
<html lang="{e(language)}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(_title(content, language))}</title>
<style>{_CSS}</style></head><body>
<h1>{e(_title(content, language))}</h1>
<p class="meta">{e(_meta(content, language))}</p>
<h2>{e(_("In one minute"))}</h2>
<div class="summary"><p>{e(said.tested)}</p>{hypothesis}{primary}</div>
<p><span class="outcome" style="background:{colour}">{e(said.recommendation)}</span></p>
<ul>{"".join(f"<li>{e(r)}</li>" for r in said.reasons)}</ul>
{decision_html}
<h2>{e(_("Key results"))}</h2>
{table}
<ul>{statements}</ul>
<h2>{e(_("Scorecard"))}</h2><p class="meta">{e(axes)}</p>
{scorecard}
<h2>{e(_("Charts"))}</h2>
<div class="charts"><figure>{_svg(forest)}<figcaption>{e(_("Effects with their intervals"))}</figcaption></figure>
<figure>{_svg(adoption)}<figcaption>{e(_("Adoption and its Bass forecast"))}</figcaption></figure></div>
<h2>{e(_("Statistical settings"))}</h2>
{settings}
<p class="meta">{e(_("Snapshot SHA-256 (canonical JSON of the figures above):"))}</p><p class="digest">{e(digest)}</p>
</body></html>
"""


# --- PDF ----------------------------------------------------------------------------------------


def _pdf_font(pdf: Any) -> tuple[str, bool]:
    """Returns the font family to use and whether it covers Unicode."""
    for path in PDF_FONTS:
        if path.exists():
            pdf.add_font("Report", "", str(path))
            bold = path.with_name("DejaVuSans-Bold.ttf")
            pdf.add_font("Report", "B", str(bold if bold.exists() else path))
            return "Report", True
    return "Helvetica", False


def render_pdf(
    content: Mapping[str, Any], digest: str, decision: Any | None = None, language: Language = "en"
) -> bytes:
    """Returns the decision report as a PDF (A4, charts as PNG)."""
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    _ = translator(language)
    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=True, margin=10)
    pdf.set_margins(10, 10, 10)
    pdf.set_lang(language)
    pdf.set_title(_title(content, language))
    pdf.add_page()
    family, unicode = _pdf_font(pdf)

    def text(value: str) -> str:
        return value if unicode else value.encode("latin-1", "replace").decode("latin-1")

    def para(value: str, size: float = 8, style: str = "", height: float = 3.8) -> None:
        pdf.set_font(family, style, size)
        pdf.multi_cell(0, height, text(value), new_x="LMARGIN", new_y="NEXT")

    def heading(value: str) -> None:
        pdf.ln(1.5)
        para(value, 10, "B", 5)

    def table(header: Sequence[str], lines: Iterable[Sequence[str]], widths: Sequence[float]) -> None:
        pdf.set_font(family, "", 6.5)
        with pdf.table(
            col_widths=tuple(widths), line_height=3.4, headings_style=FontFace(emphasis="BOLD"), text_align="LEFT"
        ) as drawn:
            drawn.row([text(h) for h in header])
            for line in lines:
                drawn.row([text(c) for c in line])

    said = summary(content, language)
    para(_title(content, language), 14, "B", 7)
    para(_meta(content, language), 7)
    heading(_("In one minute"))
    para(said.tested, 8)
    if said.hypothesis:
        para(_("Hypothesis: {text}").format(text=said.hypothesis), 8)
    if said.primary:
        para(said.primary, 8, "B")
    heading(said.recommendation)
    for reason in said.reasons:
        para(f"- {reason}", 7, height=3.3)
    if decision is not None:
        heading(_("Board decision"))
        for label, value in _decision_lines(decision, language):
            para(f"{label}: {value}", 7.5, height=3.5)
    heading(_("Key results"))
    table(
        _result_header(content, language),
        (
            (r.metric, r.role, r.variant, r.control_mean, r.mean, r.effect, r.interval, r.evidence)
            for r in result_lines(content, language)
        ),
        (34, 16, 18, 16, 18, 16, 36, 22),
    )
    heading(_("Scorecard"))
    para(" · ".join(_axis_score(content, axis, language) for axis in ("economic", "social", "human")), 7)
    table(
        [_("Axis"), _("Criterion"), _("Observed"), _("Target"), _("Status")],
        scorecard_lines(content, language),
        (18, 76, 30, 28, 18),
    )
    forest, adoption = report_charts(content, language)
    for chart in (forest, adoption):
        picture = io.BytesIO(_png(chart))
        pdf.ln(2)
        pdf.image(picture, w=pdf.epw * 0.8)
    heading(_("Statistical settings"))
    table([_("Setting"), _("Value")], settings_lines(content, language), (70, 120))
    pdf.ln(1)
    para(_("Snapshot SHA-256: {digest}").format(digest=digest), 6.5, height=3)
    return bytes(pdf.output())
