"""mmgrec dashboard: `streamlit run app/main.py`.

The sidebar picks a run (the shipped demo run and every run under the runs root, which only whoever starts the
server sets: `streamlit run app/main.py -- --runs DIR`); `st.navigation` runs one of the pages in app/views/. The
URL carries `run`, `user` and `item`, so a view can be shared. The server listens on localhost only
(.streamlit/config.toml); `--server.address 0.0.0.0` opens it to the network on purpose.
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:                   # `streamlit run` puts app/ first on the path, not the repository
    sys.path.insert(0, str(ROOT))

from app import state  # noqa: E402

st.set_page_config(page_title="mmgrec", page_icon=":material/account_tree:", layout="wide")

VIEWS = ROOT / "app" / "views"
PAGES = [
    st.Page(VIEWS / "overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page(VIEWS / "recid_tree.py", title="Rec-ID tree", icon=":material/account_tree:"),
    st.Page(VIEWS / "collisions.py", title="Collisions", icon=":material/join_inner:"),
    st.Page(VIEWS / "codewords.py", title="Codewords", icon=":material/scatter_plot:"),
    st.Page(VIEWS / "recommend.py", title="Recommend", icon=":material/recommend:"),
    st.Page(VIEWS / "explain.py", title="Explain", icon=":material/help:"),
    st.Page(VIEWS / "compare.py", title="Compare", icon=":material/leaderboard:"),
    st.Page(VIEWS / "train.py", title="Train", icon=":material/model_training:"),
]


def pick_run() -> None:
    """Sidebar: the runs folder and the run; the choice goes to session state and the URL."""
    with st.sidebar:
        st.caption(f"Runs from `{state.run_key(state.runs_dir())}`, set when the app was started "
                   "(`streamlit run app/main.py -- --runs DIR`).")
        entries = state.list_runs(state.runs_dir())
        if not entries:
            st.session_state["run_entry"] = None
            st.caption("No runs yet.")
            return
        keys = [e.key for e in entries]
        wanted = st.query_params.get("run")
        if wanted and wanted not in keys:               # shown once: the URL is rewritten to the run shown
            st.warning(f"Run {state.plain(wanted, 80)} from the URL was not found; showing {state.plain(keys[0], 80)}.")
        if "run_choice" not in st.session_state or st.session_state["run_choice"] not in keys:
            st.session_state["run_choice"] = wanted if wanted in keys else keys[0]
        labels = {e.key: e.label for e in entries}
        choice = st.selectbox("Run", keys, key="run_choice", format_func=labels.get)
        entry = entries[keys.index(choice)]
        if st.session_state.get("run_entry") is not None and st.session_state["run_entry"].key != entry.key:
            for name in ("user", "item"):                   # ids of one run mean nothing in another
                st.query_params.pop(name, None)
                st.session_state.pop(f"{name}_choice", None)
                st.session_state.pop(f"_{name}", None)
        st.session_state["run_entry"] = entry
        state.remember("run", entry.key)
        st.caption(state.plain(entry.key, 200))


def show(page) -> None:
    """Run the page; an error it did not foresee (a run file with unexpected content, say) becomes a message in
    the page instead of a traceback, and the other pages stay usable."""
    try:
        page.run()
    except Exception as err:                         # st.stop() and st.rerun() are not Exceptions: they pass
        st.error(f"This page could not be drawn for this run: {state.plain(f'{type(err).__name__}: {err}', 300)}")
        st.caption("Pick another run in the sidebar, or train this one again.")


pick_run()
show(st.navigation(PAGES))
