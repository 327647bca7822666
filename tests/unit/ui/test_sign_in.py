"""No page of the console can be reached without signing in; roles decide which pages exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.accounts import Account
from experiments.store import Store
from tests.unit.ui.conftest import APP, PAGES, PASSWORD, console_in, signed_in


def test_every_page_is_unreachable_before_signing_in(console: str) -> None:
    at = console_in().run()
    assert [t.value for t in at.title] == ["Rhizome console"]
    assert at.text_input(key="sign_in_password") is not None
    for page in PAGES:
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(f"pages/{page}.py")


@pytest.mark.parametrize("page", PAGES)
def test_a_page_run_on_its_own_without_an_account_shows_nothing_but_the_sign_in_notice(console: str, page: str) -> None:
    at = console_in(script=APP.with_name("pages") / f"{page}.py").run()
    assert [w.value for w in at.warning] == ["Sign in to use the console."]
    assert not at.title and not at.dataframe and not at.metric


def test_signing_in_with_the_right_password_opens_the_portfolio(console: str) -> None:
    at = console_in().run()
    at.text_input(key="sign_in_name").input("board-user")
    at.text_input(key="sign_in_password").input(PASSWORD)
    at.button[0].click().run()
    assert at.session_state["account"] == Account("board-user", "board")
    assert [t.value for t in at.title] == ["Portfolio"]


def test_a_wrong_password_is_refused(console: str) -> None:
    at = console_in().run()
    at.text_input(key="sign_in_name").input("board-user")
    at.text_input(key="sign_in_password").input("not the password")
    at.button[0].click().run()
    assert [e.value for e in at.error] == ["Unknown name or wrong password."]
    assert "account" not in at.session_state


def test_a_store_without_accounts_tells_the_operator_how_to_create_the_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    Store(url).migrate()
    monkeypatch.setenv("RHIZOME_DATABASE_URL", url)
    at = console_in().run()
    assert "rhizome users add NAME --role admin" in at.info[0].value
    assert not at.text_input


@pytest.mark.parametrize(("role", "admin_page"), [("lab", True), ("board", False), ("admin", True)])
def test_the_admin_page_exists_for_lab_and_admin_only(console: str, role: str, admin_page: bool) -> None:
    at = signed_in(role)
    if admin_page:
        at.switch_page("pages/admin.py").run()
        assert [t.value for t in at.title] == ["Admin"]
    else:
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page("pages/admin.py")


def test_signing_out_forgets_the_account(console: str) -> None:
    at = signed_in("lab")
    at.button(key="sign_out").click().run()
    assert "account" not in at.session_state
    assert [t.value for t in at.title] == ["Rhizome console"]
