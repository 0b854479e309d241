"""Compare: a `compare` directory's leaderboard (every system and baseline, mean and spread over seeds), the
Rec-IDs each generative system made, and a way into each system's run for the other pages."""

import pandas as pd
import streamlit as st

from app import state
from mmgrec_core.compare import METRICS, figure, read_leaderboard
from mmgrec_core.config import RunError

st.title("Compare systems")
entries = state.list_compares(state.runs_dir())
if not entries:
    st.info("No comparison found. Run one with `python -m mmgrec_core compare --dataset demo --systems "
            f"mmgrec,tiger,lightgcn --seeds 0,1,2 --out runs/compare_demo`; comparisons are listed from "
            f"`{state.run_key(state.runs_dir())}`.")
    st.stop()

keys = [e.key for e in entries]
wanted = st.query_params.get("compare")
if wanted and wanted not in keys:
    st.warning(f"Comparison {state.plain(wanted, 80)} from the URL was not found; showing another one.")
labels = {e.key: e.label for e in entries}
choice = st.selectbox("Comparison", keys, index=keys.index(wanted) if wanted in keys else 0,
                      format_func=labels.get)
if st.query_params.get("compare") != choice:
    st.query_params["compare"] = choice
entry = entries[keys.index(choice)]
try:
    board = read_leaderboard(entry.path)
except RunError as e:
    st.error(f"This comparison cannot be read: {state.plain(e, 300)}")
    st.stop()

seeds = board.get("seeds", [])
st.markdown(f"Dataset `{state.plain(board.get('dataset'), 80)[1:-1]}`, {len(seeds)} model seed(s) "
            f"{', '.join(map(str, seeds))}. {board.get('protocol', '')}.")
metric = st.selectbox("Metric", METRICS, index=METRICS.index("ndcg@10"))
st.plotly_chart(figure(board, metric), key="leaderboard")

rows = []
for name, row in board["systems"].items():
    out = {"system": name, "kind": row.get("kind", ""), "seeds": len(row.get("seeds", []))}
    for m in METRICS:
        out[m] = f"{row['test'][m]['mean']:.4f} ± {row['test'][m]['std']:.4f}"
    out["train s"] = round(float(row["train_seconds"]["mean"]), 1)
    out["ms / user"] = round(float(row["inference_ms"]["mean"]), 3)
    rows.append(out)
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
st.caption("Test split, mean ± sample standard deviation over the model seeds; the split is the same for all. "
           "ms / user: top-20 for 256 test users, seen items excluded.")
for name, row in board["systems"].items():
    if row.get("same_run_as"):
        st.caption(f"{state.plain(name, 40)} has the same settings as {state.plain(row['same_run_as'], 40)} but for "
                   "its name, so its runs are copies of those.")
for name, why in board.get("failed", {}).items():
    st.error(f"{state.plain(name, 40)} failed: {state.plain(why, 300)}; run the same compare command again to "
             "retry it.")

generative = {n: r for n, r in board["systems"].items() if r.get("kind") == "generative"}
if generative:
    st.subheader("Rec-IDs of the generative systems")
    stats = []
    for name, row in generative.items():
        ami = row.get("ami", {})
        stats.append({"system": name, "Rec-ID length": row.get("rec_id_length"),
                      "collision rate": round(float(row.get("collision_rate", {}).get("mean", 0.0)), 4),
                      "AMI of first tokens": ", ".join(f"{k} {v['mean']:.3f}" for k, v in ami.items()) or "-"})
    st.dataframe(pd.DataFrame(stats), hide_index=True, width="stretch")
    st.caption("AMI (MGR-LF's diagnostic): adjusted mutual information between the first-level tokens of two "
               "modalities' codes (late fusion, BBQRec's parts) or between fused codes and each modality's own "
               "(early fusion). Near 1: the same grouping; near 0: independent.")

    st.subheader("Open a system's run")
    st.caption("The other pages (Rec-ID tree, Recommend, Explain, ...) then show that run.")
    runs = {e.key: e for e in state.list_runs(state.runs_dir())}

    def open_run(key: str) -> None:
        st.session_state["run_choice"] = key
        st.query_params["run"] = key

    cols = st.columns(min(4, sum(len(r.get("runs", [])) for r in generative.values())) or 1)
    n = 0
    for name, row in generative.items():
        for seed, rel in zip(row.get("seeds", []), row.get("runs", [])):
            key = state.run_key(entry.path / rel)
            if key in runs and cols[n % len(cols)].button(f"{name}, seed {seed}", key=f"open_{key}",
                                                          on_click=open_run, args=(key,)):
                st.switch_page("views/overview.py")
            n += 1
