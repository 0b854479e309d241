"""mmgrec dashboard (placeholder until the full app lands): the demo world at a glance."""

from __future__ import annotations

import numpy as np
import plotly.express as px
import streamlit as st

from mmgrec_core.data.loaders import load_dataset

st.set_page_config(page_title="mmgrec", layout="wide")


@st.cache_data(show_spinner="Generating the demo world...")
def demo_summary(spec: str) -> tuple[dict, np.ndarray, object]:
    data = load_dataset(spec)
    return data.counts(), np.sort(data.popularity)[::-1], data.item_table


st.title("mmgrec: multimodal generative recommendation")
st.write("Every item gets a **Rec-ID**, a short tuple of discrete tokens `(c1, c2, c3, p)`, and a Transformer "
         "generates the Rec-IDs of what a user will like next. The Rec-ID tree, collision, codeword, live "
         "recommendation and explanation pages arrive with the next releases; this page shows the demo world "
         "they will open on.")
counts, popularity, table = demo_summary("demo")
cols = st.columns(5)
for col, (label, value) in zip(cols, counts.items()):
    col.metric(label, f"{value:,}")
left, right = st.columns(2)
left.plotly_chart(px.line(x=np.arange(1, len(popularity) + 1), y=popularity, log_x=True, log_y=True,
                          labels={"x": "item rank", "y": "training interactions"},
                          title="Zipf-like item popularity"), use_container_width=True)
right.plotly_chart(px.sunburst(table, path=["category", "subcategory"], title="Planted taxonomy"),
                   use_container_width=True)
st.caption("Train baselines from the command line: `python -m mmgrec_core baselines --dataset demo --out runs/demo`")
