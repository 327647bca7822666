"""The one-page decision report, in HTML and PDF, rendered from a snapshot's content.

The report shows what the board saw (`board.snapshot_content`): the recommendation and its reasons,
the key results, the scorecard on three axes, the adoption curve with its Bass forecast and the
forest plot of effects, the decision when one was recorded, and the snapshot's SHA-256 digest.
Charts are Altair (Vega-Lite) specifications rendered locally by vl-convert: inline SVG in the
HTML (no script, no network), PNG in the PDF (fpdf2).

The plain-language wording of effects (`plain_effect`) and the two charts the report shares with
the console (`forest_chart`, `adoption_chart`) live here so that the console and the report say
and draw the same thing.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import altair as alt
import pandas as pd

from experiments.adoption import Forecast
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
#: What the chart builders return (a layered chart's `properties` may also give a facet chart).
AnyChart = alt.Chart | alt.LayerChart | alt.FacetChart
CHART_WIDTH = 330
CHART_HEIGHT = 190


# --- wording ------------------------------------------------------------------------------------


def signed(value: float | None, difference: str) -> str:
    """Returns an effect as the lab writes it: "+8.1 %" (relative) or "+0.012" (absolute); "n/a" for None."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value * 100:+.1f} %" if difference == "relative" else f"{value:+.4g}"


def interval_label(alpha: float, engine: str) -> str:
    """Returns the interval's name: "95 % interval", "95 % always-valid interval" or "95 % credible interval"."""
    kind = {"sequential": "always-valid interval", "bayesian": "credible interval"}.get(engine, "interval")
    return f"{(1 - alpha) * 100:.0f} % {kind}"


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
) -> EffectStatement:
    """Returns one comparison row in plain words, e.g. "guided beats control on trip_completed by
    +8.1 % (95 % interval +1.0 % to +15.0 %)".

    A difference is called clear when the interval excludes 0 (and, under a multiple-comparison
    correction, the adjusted p-value is below alpha); under the Bayesian engine when the chance to
    beat the control is at least 1 - alpha (or at most alpha).
    """
    metric, variant = _field(row, "metric"), _field(row, "variant")
    effect, low, high = _field(row, "effect"), _field(row, "ci_low"), _field(row, "ci_high")
    error = _field(row, "error")
    if error is not None or effect is None or low is None or high is None:
        return EffectStatement("error", f"{variant} vs {control} on {metric}: cannot be computed ({error}).")
    chance = _field(row, "chance_to_win")
    interval = f"{interval_label(alpha, engine)} {signed(low, difference)} to {signed(high, difference)}"
    notes = [interval]
    if engine == "bayesian" and chance is not None:
        notes.append(f"{chance * 100:.0f} % chance to beat {control}")
        up, down = chance >= 1 - alpha, chance <= alpha
    else:
        adjusted = _field(row, "adjusted_p_value")
        survives = correction == "none" or adjusted is None or adjusted < alpha
        up, down = low > 0 and survives, high < 0 and survives
    if not higher_is_better:
        notes.append("lower is better")
    said = f"{signed(effect, difference)} ({'; '.join(notes)})"
    good, bad = (up, down) if higher_is_better else (down, up)
    if good:
        return EffectStatement("better", f"{variant} beats {control} on {metric} by {said}.")
    if bad:
        return EffectStatement("worse", f"{variant} does worse than {control} on {metric}: {said}.")
    return EffectStatement("unclear", f"No clear difference yet between {variant} and {control} on {metric}: {said}.")


def describe(row: Mapping[str, Any] | Any, experiment: ExperimentSpec) -> EffectStatement:
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
    )


def metric_roles(primary: str, guardrails: Iterable[str], metrics: Iterable[str]) -> dict[str, str]:
    """Returns each metric's role: primary, guardrail or secondary."""
    guards = set(guardrails)
    return {key: "primary" if key == primary else "guardrail" if key in guards else "secondary" for key in metrics}


# --- charts -------------------------------------------------------------------------------------


def forest_chart(
    rows: Sequence[Mapping[str, Any] | Any],
    roles: Mapping[str, str],
    *,
    difference: str,
    alpha: float,
    engine: str,
    minimum_effect: float | None = None,
) -> AnyChart:
    """Returns the forest plot: each (metric, treatment) effect with its interval, on one axis with
    0 (no difference) and the minimum effect required for go."""
    get = _field
    records = [
        {
            "comparison": f"{get(r, 'metric')} · {get(r, 'variant')}",
            "role": roles.get(get(r, "metric"), "secondary"),
            "effect": get(r, "effect"),
            "low": get(r, "ci_low"),
            "high": get(r, "ci_high"),
            "said": f"{signed(get(r, 'effect'), difference)} ({signed(get(r, 'ci_low'), difference)} to "
            f"{signed(get(r, 'ci_high'), difference)})",
        }
        for r in rows
        if get(r, "effect") is not None and get(r, "ci_low") is not None and get(r, "ci_high") is not None
    ]
    frame = pd.DataFrame.from_records(records, columns=["comparison", "role", "effect", "low", "high", "said"])
    frame["rank"] = frame["role"].map({role: i for i, role in enumerate(ROLE_ORDER)})
    axis_format = ".0%" if difference == "relative" else ".3~g"
    title = f"Effect vs control ({interval_label(alpha, engine)})"
    y = alt.Y("comparison:N", title=None, sort=alt.EncodingSortField("rank"))
    colour = alt.Color(
        "role:N", scale=alt.Scale(domain=list(ROLE_ORDER), range=["#0969da", "#cf222e", "#6e7781"]), title="Role"
    )
    base = alt.Chart(frame)
    bars = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("low:Q", title=title, axis=alt.Axis(format=axis_format)), x2="high:Q", y=y, color=colour
    )
    points = base.mark_point(filled=True, size=60).encode(
        x="effect:Q", y=y, color=colour, tooltip=["comparison", "role", "said"]
    )
    rules = [{"at": 0.0, "what": "no difference"}]
    if minimum_effect:
        rules.append({"at": minimum_effect, "what": "minimum effect for go"})
    marks = (
        alt.Chart(pd.DataFrame(rules)).mark_rule(strokeDash=[4, 3], color="#57606a").encode(x="at:Q", tooltip=["what"])
    )
    height = max(60, 26 * len(frame))
    return alt.layer(bars, points, marks).properties(width=CHART_WIDTH, height=height)


def adoption_chart(cumulative: Sequence[Sequence[float]], forecast: Forecast | None) -> AnyChart:
    """Returns the adoption curve: cumulative adopters per day since the start, with the Bass
    forecast and its band when a fit exists."""
    observed = pd.DataFrame([(float(d), float(n)) for d, n in cumulative], columns=["day", "adopters"])
    x = alt.X("day:Q", title="Days since the pilot started")
    layers: list[alt.Chart] = []
    if forecast is not None:
        band = pd.DataFrame(
            {"day": forecast.days, "adopters": forecast.adopters, "low": forecast.low, "high": forecast.high}
        )
        level = f"{forecast.level * 100:.0f} % band"
        layers.append(
            alt.Chart(band)
            .mark_area(opacity=0.18, color="#0969da")
            .encode(
                x=x,
                y="low:Q",
                y2="high:Q",
                tooltip=[
                    alt.Tooltip("low:Q", format=",.0f", title=f"{level} low"),
                    alt.Tooltip("high:Q", format=",.0f", title=f"{level} high"),
                ],
            )
        )
        layers.append(
            alt.Chart(band)
            .mark_line(strokeDash=[5, 3], color="#0969da")
            .encode(x=x, y="adopters:Q", tooltip=[alt.Tooltip("adopters:Q", format=",.0f", title="Bass forecast")])
        )
    layers.append(
        alt.Chart(observed)
        .mark_line(point=alt.OverlayMarkDef(color="#1a7f37"), color="#1a7f37")
        .encode(
            x=x,
            y=alt.Y("adopters:Q", title="Cumulative adopters"),
            tooltip=["day", alt.Tooltip("adopters:Q", format=",.0f", title="adopters")],
        )
    )
    return alt.layer(*layers).properties(width=CHART_WIDTH, height=CHART_HEIGHT)


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


def report_charts(content: Mapping[str, Any]) -> tuple[AnyChart, AnyChart]:
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
    )
    return forest, adoption_chart(content["adoption"]["cumulative_adopters"], _forecast_of(content))


# --- what the report says -----------------------------------------------------------------------


class ResultLine(NamedTuple):
    """One line of the key results table."""

    metric: str
    role: str
    variant: str
    control_mean: str
    mean: str
    effect: str
    interval: str
    evidence: str
    statement: str


def _number(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:,.4g}"


def result_lines(content: Mapping[str, Any]) -> list[ResultLine]:
    """Returns the key results: one line per (metric, treatment), primary and guardrails first."""
    exp = content["experiment"]
    direction = {mk["key"]: mk["higher_is_better"] for mk in exp["metrics"]}
    roles = metric_roles(exp["primary"], [g["metric"] for g in exp["guardrails"]], direction)
    lines = []
    for row in content["results"]["analysis"]["comparisons"]:
        said = plain_effect(
            row,
            control=exp["control"],
            difference=exp["difference"],
            alpha=exp["alpha"],
            engine=exp["engine"],
            correction=exp["correction"],
            higher_is_better=direction.get(row["metric"], True),
        )
        if exp["engine"] == "bayesian":
            evidence = "n/a" if row["chance_to_win"] is None else f"{row['chance_to_win'] * 100:.1f} % to win"
        else:
            p = row["adjusted_p_value"] if exp["correction"] != "none" else row["p_value"]
            evidence = "n/a" if p is None else f"p = {p:.3g}"
        lines.append(
            ResultLine(
                row["metric"],
                roles.get(row["metric"], "secondary"),
                row["variant"],
                _number(row["control_mean"]),
                _number(row["mean"]),
                signed(row["effect"], exp["difference"]),
                f"{signed(row['ci_low'], exp['difference'])} to {signed(row['ci_high'], exp['difference'])}",
                evidence,
                said.text,
            )
        )
    return sorted(lines, key=lambda line: ROLE_ORDER.index(line.role))


def _observed(criterion: Mapping[str, Any]) -> str:
    value = criterion["observed"]
    if value is None:
        return "no data"
    if criterion["key"] in ("district_reach", "reach_gap", "population_reach"):
        return f"{value * 100:.0f} %"
    return f"{value:,.4g}"


def _target(criterion: Mapping[str, Any]) -> str:
    target = criterion["target"]
    if target is None:
        return "-"
    sign = "≥" if criterion["comparison"] == ">=" else "≤"
    if criterion["key"] in ("district_reach", "reach_gap"):
        return f"{sign} {target * 100:.0f} %"
    return f"{sign} {target:,.4g}"


def scorecard_lines(content: Mapping[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """Returns the scorecard as (axis, criterion, observed, target, status) lines."""
    return [
        (axis, c["label"], _observed(c), _target(c), c["status"])
        for axis in ("economic", "social", "human")
        for c in content["scorecard"][axis]["criteria"]
    ]


def _axis_score(content: Mapping[str, Any], axis: str) -> str:
    score = content["scorecard"][axis]["score"]
    return "no target" if score is None else f"{score * 100:.0f} % of targets met"


def headline(content: Mapping[str, Any]) -> str:
    """Returns the recommendation in one sentence, e.g. "Recommendation: go with guided"."""
    advice = content["recommendation"]
    text = f"Recommendation: {advice['outcome']}"
    if advice["outcome"] == "go" and advice["variant"]:
        text += f" with {advice['variant']}"
    if advice["outcome"] == "keep running" and advice["expected_days"] is not None:
        text += f" (about {math.ceil(advice['expected_days'])} more days to the planned sample)"
    return text


def _decision_lines(decision: Any) -> list[tuple[str, str]]:
    """Returns the recorded decision as (label, value) lines."""
    return [
        ("Decision", f"{decision.outcome} (recommended: {decision.recommendation})"),
        ("Rationale", decision.rationale),
        ("Members present", ", ".join(decision.members)),
        ("Conditions", decision.conditions or "none"),
        ("Recorded by", f"{decision.recorded_by}, {decision.at:%Y-%m-%d %H:%M} UTC"),
    ]


def _engine_note(content: Mapping[str, Any]) -> str:
    exp = content["experiment"]
    srm = content["results"]["analysis"]["srm"]
    srm_p = "n/a" if srm["p_value"] is None else f"{srm['p_value']:.3g}"
    return (
        f"Engine {exp['engine']}, {exp['difference']} difference, alpha {exp['alpha']:g}, correction "
        f"{exp['correction']}; sample-ratio check p = {srm_p}{' (MISMATCH)' if srm['mismatch'] else ''}. "
        f"Figures as of {content['as_of']}."
    )


# --- HTML ---------------------------------------------------------------------------------------


def _svg(chart: AnyChart) -> str:
    import vl_convert as vlc

    return str(vlc.vegalite_to_svg(chart.to_dict()))


def _png(chart: AnyChart) -> bytes:
    import vl_convert as vlc

    return bytes(vlc.vegalite_to_png(chart.to_dict(), scale=2))


_CSS = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#1f2328;font-size:14px}
h1{font-size:20px;margin:0 0 4px}
h2{font-size:15px;margin:18px 0 6px;border-bottom:1px solid #d0d7de}
.meta{color:#57606a;font-size:12px}
.outcome{font-size:18px;font-weight:600;padding:8px 12px;border-radius:6px;color:#fff;display:inline-block}
table{border-collapse:collapse;width:100%;font-size:12px}
td,th{border:1px solid #d0d7de;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f6f8fa}
.charts{display:flex;gap:16px;flex-wrap:wrap}
.met{color:#1a7f37}
.missed{color:#cf222e}
.digest{font-family:ui-monospace,monospace;font-size:11px;word-break:break-all}
.decision{background:#f6f8fa;padding:8px;border-radius:6px}
"""


def _rows(cells: Iterable[Sequence[str]], header: Sequence[str], classes: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(cells):
        css = f' class="{classes[i]}"' if classes else ""
        body.append(f"<tr{css}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def render_html(content: Mapping[str, Any], digest: str, decision: Any | None = None) -> str:
    """Returns the one-page decision report as a self-contained HTML document (charts as inline SVG)."""
    e = html.escape
    pilot, exp, advice = content["pilot"], content["experiment"], content["recommendation"]
    forest, adoption = report_charts(content)
    colour = OUTCOME_COLOURS.get(advice["outcome"], "#57606a")
    reasons = "".join(f"<li>{e(r['text'])}</li>" for r in advice["reasons"])
    results = result_lines(content)
    card = scorecard_lines(content)
    axes = " · ".join(f"{axis}: {_axis_score(content, axis)}" for axis in ("economic", "social", "human"))
    decision_html = ""
    if decision is not None:
        decision_html = (
            "<h2>Board decision</h2><div class='decision'>"
            + "".join(f"<p><b>{e(k)}:</b> {e(v)}</p>" for k, v in _decision_lines(decision))
            + "</div>"
        )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Decision report: {e(pilot["name"])} / {e(exp["key"])}</title>
<style>{_CSS}</style></head><body>
<h1>Decision report: {e(pilot["name"])} / {e(exp["key"])}</h1>
<p class="meta">Pilot {e(pilot["key"])} · stage {e(pilot["stage"])} · experiment status {e(exp["status"])} ·
next decision {e(pilot["next_decision"] or "not set")} · figures as of {e(content["as_of"])}</p>
<p>{e(exp["hypothesis"])}</p>
<h2>Recommendation</h2>
<p><span class="outcome" style="background:{colour}">{e(headline(content))}</span></p>
<ul>{reasons}</ul>
{decision_html}
<h2>Key results</h2>
{
        _rows(
            ([r.metric, r.role, r.variant, r.control_mean, r.mean, r.effect, r.interval, r.evidence] for r in results),
            [
                "Metric",
                "Role",
                "Variant",
                "Control mean",
                "Variant mean",
                "Effect",
                interval_label(exp["alpha"], exp["engine"]),
                "Evidence",
            ],
        )
    }
<ul>{"".join(f"<li>{e(r.statement)}</li>" for r in results if r.role != "secondary")}</ul>
<h2>Scorecard</h2><p class="meta">{e(axes)}</p>
{_rows(card, ["Axis", "Criterion", "Observed", "Target", "Status"], [c[4].replace(" ", "-") for c in card])}
<h2>Charts</h2>
<div class="charts"><figure>{_svg(forest)}<figcaption>Effects with their intervals</figcaption></figure>
<figure>{_svg(adoption)}<figcaption>Adoption and Bass forecast</figcaption></figure></div>
<p class="meta">{e(_engine_note(content))}</p>
<p class="meta">Snapshot SHA-256 (canonical JSON of the figures above):</p><p class="digest">{e(digest)}</p>
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


def render_pdf(content: Mapping[str, Any], digest: str, decision: Any | None = None) -> bytes:
    """Returns the one-page decision report as a PDF (A4, charts as PNG)."""
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    pdf.set_auto_page_break(auto=True, margin=10)
    pdf.set_margins(10, 10, 10)
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

    pilot, exp, advice = content["pilot"], content["experiment"], content["recommendation"]
    para(f"Decision report: {pilot['name']} / {exp['key']}", 14, "B", 7)
    para(
        f"Pilot {pilot['key']} · stage {pilot['stage']} · status {exp['status']} · next decision "
        f"{pilot['next_decision'] or 'not set'} · figures as of {content['as_of']}",
        7,
    )
    if exp["hypothesis"]:
        para(exp["hypothesis"], 8)
    heading(headline(content))
    for reason in advice["reasons"]:
        para(f"- {reason['text']}", 7, height=3.3)
    if decision is not None:
        heading("Board decision")
        for label, value in _decision_lines(decision):
            para(f"{label}: {value}", 7.5, height=3.5)
    heading("Key results")
    header = (
        "Metric",
        "Role",
        "Variant",
        "Control",
        "Variant mean",
        "Effect",
        interval_label(exp["alpha"], exp["engine"]),
        "Evidence",
    )
    pdf.set_font(family, "", 6.5)
    with pdf.table(
        col_widths=(26, 16, 16, 18, 18, 16, 40, 24),
        line_height=3.4,
        headings_style=FontFace(emphasis="BOLD"),
        text_align="LEFT",
    ) as table:
        table.row([text(h) for h in header])
        for r in result_lines(content):
            table.row(
                [
                    text(c)
                    for c in (r.metric, r.role, r.variant, r.control_mean, r.mean, r.effect, r.interval, r.evidence)
                ]
            )
    heading("Scorecard")
    para(" · ".join(f"{axis}: {_axis_score(content, axis)}" for axis in ("economic", "social", "human")), 7)
    pdf.set_font(family, "", 6.5)
    with pdf.table(col_widths=(18, 70, 30, 30, 20), line_height=3.2, headings_style=FontFace(emphasis="BOLD")) as table:
        table.row([text(h) for h in ("Axis", "Criterion", "Observed", "Target", "Status")])
        for line in scorecard_lines(content):
            table.row([text(c) for c in line])
    forest, adoption = report_charts(content)
    pdf.ln(2)
    top = pdf.get_y()
    width = (pdf.w - 25) / 2
    drawn = [
        pdf.image(io.BytesIO(_png(chart)), x=10 + i * (5 + width), y=top, w=width)
        for i, chart in enumerate((forest, adoption))
    ]
    pdf.set_y(top + max(float(info.rendered_height) for info in drawn) + 1)
    para(_engine_note(content), 6.5, height=3)
    para(f"Snapshot SHA-256: {digest}", 6.5, height=3)
    return bytes(pdf.output())
