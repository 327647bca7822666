"""The console's reads, cached: one store per database URL, figures kept for a few seconds.

Every cached function takes the database URL as its first argument, so two stores (two tests, two
consoles in one process) never share an entry; `forget` empties the figures after a write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

from experiments import board
from experiments.adoption import BassFit, Forecast, RetentionMatrix
from experiments.feedback import VoiceSummary
from experiments.readmodels import adoption as adoption_reads
from experiments.readmodels import catalog
from experiments.readmodels import exposure as exposure_reads
from experiments.readmodels import portfolio as portfolio_reads
from experiments.readmodels import timeline as timeline_reads
from experiments.readmodels import voice as voice_reads
from experiments.registry import PilotSpec
from experiments.results import experiment_results
from experiments.settings import load_settings
from experiments.store import Store, StoredExperiment

#: Seconds a figure is reused before it is read again (the workers flush about every second).
TTL_SECONDS = 15


@st.cache_resource(show_spinner=False)
def _store(url: str) -> Store:
    return Store(url)


def database_url() -> str:
    """Returns the database URL of the settings."""
    return load_settings().database_url


def store() -> Store:
    """Returns the store of the settings' database (one engine per URL for the process)."""
    return _store(database_url())


def forget() -> None:
    """Empties every cached figure (after the console wrote something)."""
    st.cache_data.clear()


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def pilots(url: str) -> dict[str, PilotSpec]:
    """Returns every pilot's spec by key."""
    return catalog.pilot_specs(_store(url))


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def experiments(url: str) -> tuple[StoredExperiment, ...]:
    """Returns every experiment with its status."""
    return catalog.stored_experiments(_store(url))


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def portfolio(url: str) -> tuple[portfolio_reads.PortfolioRow, ...]:
    """Returns the portfolio rows (every pilot, its experiments and their recommendations)."""
    return portfolio_reads.portfolio(_store(url))


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def evaluation(url: str, experiment: str) -> board.Evaluation:
    """Returns what the board sees of the experiment."""
    return board.evaluate(_store(url), experiment)


@dataclass(frozen=True, slots=True)
class ExperimentView:
    """What the Experiment page shows besides the board's evaluation: results of a segment and the
    monitoring looks."""

    results: dict[str, Any]
    segments: tuple[str, ...]
    monitoring: tuple[exposure_reads.MonitoringPoint, ...]


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def experiment_view(url: str, experiment: str, segment: str, metric: str) -> ExperimentView:
    """Returns the experiment's results for a segment, its segments and the monitoring looks of a metric."""
    db = _store(url)
    stored = db.experiment(experiment)
    return ExperimentView(
        experiment_results(db, experiment, segment),
        tuple(s for s in db.experiment_segments(experiment) if s),
        exposure_reads.monitoring(db, stored.spec, [metric]),
    )


@dataclass(frozen=True, slots=True)
class PilotView:
    """What the Pilot page shows of a pilot's adoption."""

    series: tuple[adoption_reads.AdoptionDay, ...]
    segments: tuple[str, ...]
    retention: RetentionMatrix
    reach: tuple[adoption_reads.Reach, ...]
    fit: BassFit | None
    forecast: Forecast | None


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def pilot_view(url: str, pilot: str, segment: str) -> PilotView:
    """Returns the pilot's adoption series, retention and reach for a segment ("" = everyone); the
    Bass forecast is fitted to everyone's adoption only."""
    db = _store(url)
    spec = pilots(url)[pilot]
    fit: BassFit | None = None
    forecast: Forecast | None = None
    if not segment:
        summary = adoption_reads.adoption_summary(db, spec)
        fit = adoption_reads.adoption_forecast(spec, summary)
        if fit.parameters is not None:
            end = board.forecast_window(summary.pilot_age_days, spec.decision.forecast_horizon_days)
            forecast = fit.forecast([end * i / (board.FORECAST_POINTS - 1) for i in range(board.FORECAST_POINTS)])
    return PilotView(
        adoption_reads.adoption_series(db, spec, segment),
        adoption_reads.adoption_segments(db, pilot),
        adoption_reads.retention(db, spec, segment),
        adoption_reads.reach(db, spec),
        fit,
        forecast,
    )


@dataclass(frozen=True, slots=True)
class VoiceView:
    """What the Citizens' voice page shows of a pilot."""

    figures: voice_reads.VoiceFigures
    summary: VoiceSummary
    comments: tuple[voice_reads.CitizenText, ...]
    ideas: tuple[voice_reads.CitizenText, ...]


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def voice_view(url: str, pilot: str) -> VoiceView:
    """Returns the pilot's feedback figures, themes, recent comments and ideas ranked by votes."""
    db = _store(url)
    return VoiceView(
        voice_reads.voice_figures(db, pilot),
        voice_reads.voice_summary(db, pilot),
        voice_reads.recent_texts(db, pilot),
        voice_reads.ranked_ideas(db, pilot),
    )


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def voice_by_variant(url: str, pilot: str, experiment: str) -> dict[str, voice_reads.VoiceFigures]:
    """Returns the feedback figures of each variant of the experiment."""
    return voice_reads.voice_by_variant(_store(url), pilot, experiment)


@st.cache_data(ttl=TTL_SECONDS, show_spinner=False)
def timeline(url: str, pilot: str) -> timeline_reads.Timeline:
    """Returns the lab's timeline of the pilot: stage gates, experiments, plan changes and decisions."""
    return timeline_reads.pilot_timeline(_store(url), pilot)
