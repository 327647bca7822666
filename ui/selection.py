"""The pilot and experiment a page is about: remembered across pages, linkable with ?pilot=&experiment=."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import streamlit as st

from experiments import formatting as fmt
from experiments.i18n import name_of, spec_text
from experiments.registry import PilotSpec
from experiments.store import StoredExperiment
from ui.language import _, current


def _choose(label: str, options: Sequence[str], describe: Callable[[str], str], memory: str) -> str:
    """Returns the option chosen, starting from the one remembered or named in the address."""
    remembered = st.session_state.get(memory) or st.query_params.get(memory)
    index = options.index(remembered) if remembered in options else 0
    choice = st.selectbox(label, options, index=index, format_func=describe, key=f"{memory}_choice")
    st.session_state[memory] = choice
    st.query_params[memory] = choice
    return str(choice)


def choose_pilot(pilots: Mapping[str, PilotSpec]) -> PilotSpec | None:
    """Returns the pilot chosen in a select box, None (with a hint) when there is none."""
    if not pilots:
        st.info(
            _("No pilot yet: an admin or the lab applies a pilot spec on the Admin page (or `rhizome pilot apply`).")
        )
        return None
    language = current()
    key = _choose(_("Pilot"), list(pilots), lambda k: f"{spec_text(pilots[k].name, language)} ({k})", "pilot")
    return pilots[key]


def choose_experiment(
    experiments: Sequence[StoredExperiment], pilots: Mapping[str, PilotSpec], *, pilot: str | None = None
) -> StoredExperiment | None:
    """Returns the experiment chosen (of one pilot, or of all), None (with a hint) when there is none."""
    shown = [e for e in experiments if pilot is None or e.pilot_key == pilot]
    if not shown:
        st.info(_("No experiment yet: experiments are declared in a pilot spec (Admin page)."))
        return None
    by_key = {e.spec.key: e for e in shown}
    language = current()

    def describe(key: str) -> str:
        e = by_key[key]
        pilot = spec_text(pilots[e.pilot_key].name, language) if e.pilot_key in pilots else e.pilot_key
        status = fmt.term(fmt.STATUSES, e.status, language)
        return f"{pilot} · {name_of(e.spec, language)} ({status})"

    chosen = by_key[_choose(_("Experiment"), list(by_key), describe, "experiment")]
    st.session_state["pilot"] = chosen.pilot_key
    return chosen
