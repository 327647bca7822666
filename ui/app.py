"""The Rhizome console (Streamlit): `rhizome console`, or `streamlit run ui/app.py`."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from experiments.results import experiment_results
from experiments.settings import load_settings
from experiments.store import Store


@st.cache_resource
def store() -> Store:
    return Store(load_settings().database_url)


st.set_page_config(page_title="Rhizome", layout="wide")
st.title("Rhizome — pilots")
db = store()
pilots = db.pilots()
if not pilots:
    st.info("No pilot yet: apply a spec with `rhizome pilot apply FILE.yaml`.")
for pilot in pilots:
    st.header(f"{pilot.name} ({pilot.key})")
    st.caption(f"stage {pilot.stage} · consent {pilot.consent}")
    for stored in db.experiments(pilot.key):
        results = experiment_results(db, stored.spec.key)
        st.subheader(f"{stored.spec.key} — {stored.status}")
        rows = []
        for variant, v in results["variants"].items():
            row: dict[str, object] = {"variant": variant, "participants": v["units"]}
            for metric, m in results["metrics"].items():
                row[metric] = m["data"][variant].get("sum")
            rows.append(row)
        st.dataframe(pd.DataFrame(rows), hide_index=True)
