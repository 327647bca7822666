"""The settings this part of the platform reads (experiments/settings.py)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from experiments.settings import DEFAULT_EVENT_MAX_AGE_DAYS, load_settings


def test_events_may_be_dated_400_days_back_unless_the_deployment_says_otherwise(tmp_path: Path) -> None:
    none = tmp_path / "none.toml"
    assert load_settings({}, none).event_max_age == timedelta(days=DEFAULT_EVENT_MAX_AGE_DAYS) == timedelta(days=400)
    assert load_settings({"RHIZOME_EVENT_MAX_AGE_DAYS": "30"}, none).event_max_age == timedelta(days=30)
    (tmp_path / "rhizome.toml").write_text("event_max_age_days = 800\n")
    assert load_settings({}, tmp_path / "rhizome.toml").event_max_age_days == 800


@pytest.mark.parametrize("days", ["0", "-5", "36501", "a year"])
def test_a_maximum_age_out_of_bounds_is_refused_naming_the_setting(tmp_path: Path, days: str) -> None:
    with pytest.raises(ValueError, match=r"^RHIZOME_EVENT_MAX_AGE_DAYS == "):
        load_settings({"RHIZOME_EVENT_MAX_AGE_DAYS": days}, tmp_path / "none.toml")
