"""Collisions: how often items share semantic codes, against codebook size, depth and tokenizer."""

import pandas as pd
import streamlit as st

from app import figures, state
from mmgrec_core.analysis import CODEBOOKS, LEVELS, SWEEP_TOKENIZERS, SweepConfig, cached_sweep, sweep
from mmgrec_core.rundir import SWEEP

run = state.current_run()
table, stats = run.table, run.tokenizer_stats

st.title("Collisions")
st.markdown(
    f"Items whose codes `c1..c{table.levels}` coincide form a *collision group*; the last token `p` ranks them "
    f"({table.collision}). Fewer collisions mean Rec-IDs that say more about the item; too many codewords leave "
    f"some unused. This run: **{table.collision_rate:.1%}** of items collide, the largest group has "
    f"**{table.max_p + 1}** items.")

left, right = st.columns(2)
left.plotly_chart(figures.level_stats(stats), key="level_stats")
right.plotly_chart(figures.group_sizes(table.group_size), key="group_sizes")

st.subheader("Largest collision groups")
n = st.slider("Groups", 1, 50, 10)
groups = table.largest_groups(n)
rows = []
for g in groups.itertuples():
    for item, name in zip(g.items, g.names):
        rows.append({"prefix": "-".join(map(str, g.prefix)), "size": g.size, "p": int(table.tokens[item, -1]),
                     "item": item, "name": name, "popularity": int(table.popularity[item])})
frame = pd.DataFrame(rows)
if frame.empty or groups["size"].max() <= 1:
    st.info("No two items share their semantic codes in this run: every group has one item (p = 0).")
else:
    st.dataframe(frame, hide_index=True, width="stretch", height=300)
    st.caption("Within a group, p orders items by training popularity (most popular first) when the collision "
               "token is `popularity`, or at random (`random`).")

st.subheader("Collision rate vs codebook size, depth and tokenizer")
st.markdown("Each point refits only the quantizer on a fixed representation (the graph encoder does not depend "
            "on the codebook). Sweeps are cached on disk; a missing one can be computed here.")
with st.expander("Sweep settings", expanded=False):
    a, b, c = st.columns(3)
    tokenizers = a.multiselect("Tokenizers", SWEEP_TOKENIZERS, default=list(SWEEP_TOKENIZERS), key="sweep_tokenizers")
    codebooks = b.multiselect("Codebook sizes", CODEBOOKS, default=list(CODEBOOKS), key="sweep_codebooks")
    levels = c.multiselect("Levels", LEVELS, default=list(LEVELS), key="sweep_levels")
    d, e = st.columns(2)
    default = SweepConfig()
    steps = d.number_input("RQ-VAE steps per point", 1, 2_000, default.steps, key="sweep_steps")
    polish = e.number_input("Polish steps", 0, 1_000, default.polish_steps, key="sweep_polish")
if not (tokenizers and codebooks and levels):
    st.info("Choose at least one tokenizer, codebook size and number of levels.")
    st.stop()
config = SweepConfig(tokenizers=tuple(tokenizers), codebooks=tuple(sorted(codebooks)), levels=tuple(sorted(levels)),
                     steps=int(steps), polish_steps=int(polish),
                     seed=run.config.seed)
result = cached_sweep(run.data, config)
shipped = run.path / SWEEP                  # written by `python app/precompute.py RUN --sweep`
if result is None and config == SweepConfig(seed=config.seed) and shipped.exists():
    result = pd.read_parquet(shipped)
    st.caption("The default sweep, stored with this run.")
if result is None:
    points = len(tokenizers) * len(codebooks) * len(levels)
    note = st.empty()
    note.warning(f"This sweep ({points} tokenizer x codebook points, each an RQ-VAE fit of {steps + polish} steps) "
                 "is not cached yet. Computing it blocks this page; the bar shows the time left after the first "
                 "point.")
    if st.button("Compute sweep", type="primary"):
        bar = st.progress(0.0, text="starting")
        result = sweep(run.data, config, progress=lambda frac, text: bar.progress(min(max(frac, 0.0), 1.0), text))
        bar.empty()
        note.empty()
if result is not None:
    metric = st.radio("Show", ["collision_rate", "unique_prefix_share", "max_p", "usage", "perplexity"],
                      horizontal=True, format_func=lambda s: s.replace("_", " "))
    st.plotly_chart(figures.sweep_lines(result, metric), key="sweep")
    st.dataframe(result, hide_index=True, width="stretch")
