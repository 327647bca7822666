"""The Admin page: applying a spec (issues with their line numbers), starting and stopping experiments,
API keys shown once, accounts for admins only."""

from __future__ import annotations

from pathlib import Path

from experiments.console_setup import console_users
from experiments.store import Store
from tests.unit.ui.conftest import open_page, read, signed_in

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "bike-share.yaml"
#: The example pilot under a key the seeded store does not have yet.
SPEC = EXAMPLE.read_text().replace("key: bike-share ", "key: city-bikes ")


def test_a_spec_with_mistakes_is_refused_with_each_issue_and_its_line(writable_console: str) -> None:
    at = open_page(signed_in("lab"), "admin")
    broken = SPEC.replace("stage: pilot ", "stage: launch ").replace("alpha: 0.05", "alpha: 5")
    at.text_area(key="spec_text").input(broken)
    at.button(key="spec_apply").click().run()
    (issues,) = [d.value for d in at.dataframe if list(d.value.columns) == ["Line", "Field", "Problem"]]
    assert any("problems; nothing was applied" in e.value for e in at.error)
    lines = broken.splitlines()
    assert set(issues["Field"]) >= {"pilot.stage", "experiments[0].analysis.alpha"}
    for line, field in zip(issues["Line"], issues["Field"], strict=True):
        assert field.rsplit(".", 1)[-1] in lines[line - 1]
    assert "city-bikes" not in {p.key for p in Store(writable_console).pilots()}


def test_applying_a_spec_creates_the_pilot_and_shows_its_api_key_once(writable_console: str) -> None:
    at = open_page(signed_in("admin"), "admin")
    at.text_area(key="spec_text").input(SPEC)
    at.button(key="spec_apply").click().run()
    assert any("Pilot city-bikes created" in read(s.value) for s in at.success)
    (key,) = [c.value for c in at.code]
    store = Store(writable_console)
    assert store.pilot_for_api_key(key) == "city-bikes"
    at.run()
    assert not at.code


def test_the_lab_stops_and_restarts_an_experiment(writable_console: str) -> None:
    store = Store(writable_console)
    at = open_page(signed_in("lab"), "admin")
    at.selectbox(key="status_experiment").select("reminders").run()
    at.text_input(key="status_reason").input("pause for the holidays")
    at.button(key="status_stop").click().run()
    assert store.experiment("reminders").status == "stopped"
    assert store.plan_history("bike-share", "reminders")[-1].reason == "pause for the holidays"
    at.button(key="status_start").click().run()
    assert store.experiment("reminders").status == "running"


def test_api_keys_are_created_shown_once_and_revoked(writable_console: str) -> None:
    store = Store(writable_console)
    at = open_page(signed_in("lab"), "admin")
    at.selectbox(key="key_pilot").select("parking")
    at.text_input(key="key_label").input("parking app v2")
    at.get("form_submit_button")[0].click().run()  # type: ignore[attr-defined]
    (key,) = [c.value for c in at.code]
    assert store.pilot_for_api_key(key) == "parking"
    made = next(k for k in store.api_keys("parking") if k.label == "parking app v2")
    at.selectbox(key="key_revoke").select(made.id)
    at.get("form_submit_button")[1].click().run()  # type: ignore[attr-defined]
    assert store.pilot_for_api_key(key) is None


def test_accounts_are_managed_by_admins_only(writable_console: str) -> None:
    lab = open_page(signed_in("lab"), "admin")
    assert [t.label for t in lab.tabs] == ["Pilots and experiments", "API keys"]
    at = open_page(signed_in("admin"), "admin")
    assert [t.label for t in at.tabs] == ["Pilots and experiments", "API keys", "Users"]
    at.text_input(key="user_name").input("carla")
    at.selectbox(key="user_role").select("board")
    at.text_input(key="user_password").input("a long enough secret")
    at.get("form_submit_button")[-2].click().run()  # type: ignore[attr-defined]
    assert ("carla", "board") in {(u.username, u.role) for u in console_users(Store(writable_console))}


def test_a_hostile_spec_is_refused_with_the_parser_s_message(writable_console: str) -> None:
    bomb = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
        f"{b}: &{b} [{','.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    )
    at = open_page(signed_in("lab"), "admin")
    at.text_area(key="spec_text").input(bomb)
    at.button(key="spec_apply").click().run()
    assert any("The spec has 1 problem; nothing was applied." in e.value for e in at.error)
    (issues,) = [d.value for d in at.dataframe if list(d.value.columns) == ["Line", "Field", "Problem"]]
    assert list(issues["Field"]) == ["yaml"]
    assert list(issues["Problem"]) == [
        "the spec holds more than 20,000 values (counting those aliases repeat), must hold at most 20,000"
    ]
