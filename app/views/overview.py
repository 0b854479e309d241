"""Overview: what the dataset and run are, how MMGRec scores beside the baselines, how training went."""

import streamlit as st

from app import figures, state

run = state.current_run()
cfg = run.config
tok, gen = cfg.tokenizer, cfg.generator

st.title("mmgrec: multimodal generative recommendation")
st.markdown(
    "Every item gets a **Rec-ID**, a short tuple of tokens `(c1, ..., cM, p)` learned from its features and the "
    "user-item graph; a Transformer then *generates* the Rec-IDs a user will like, one token at a time, with a beam "
    "search that may only follow Rec-IDs that exist. The pages on the left open each step: the **Rec-ID tree**, "
    "**collisions** (items sharing codes), the **codewords**, a live **recommendation**, and **why** an item got "
    "its Rec-ID.")

counts = run.data.counts()
cols = st.columns(len(counts) + 2)
for col, (label, value) in zip(cols, counts.items()):
    col.metric(label, f"{value:,}")
cols[-2].metric("collision rate", f"{run.table.collision_rate:.1%}",
                help="Share of items whose semantic codes c1..cM are shared with another item; p separates them.")
cols[-1].metric("largest group", f"{run.table.max_p + 1}", help="Items in the biggest collision group.")

left, right = st.columns([2, 3])
with left:
    st.subheader("This run")
    st.markdown(
        f"- dataset `{cfg.dataset}`, seed {cfg.seed}\n"
        f"- tokenizer **{tok.name}**: {run.table.levels} levels x {tok.options.codebook_size} codewords, "
        f"collision token by {tok.collision}\n"
        f"- generator: d={gen.dim}, {gen.encoder_layers}+{gen.decoder_layers} layers, "
        f"positions `{gen.pe}`, beam {cfg.decoding.beam}\n"
        f"- baselines: {', '.join(cfg.baselines.models) or 'none'}")
    split = st.radio("Split", ["test", "valid"], horizontal=True)
table = figures.metrics_table(run.metrics, split)
with right:
    st.plotly_chart(figures.metrics_bars(table), key="metrics_bars")
seconds = {m: v.get("train_seconds") for m, v in run.metrics.get("models", {}).items()}
st.dataframe(table.assign(train_seconds=table.index.map(seconds)).style.format(precision=4),
             width="stretch")                      # full width: every metric column is visible

st.plotly_chart(figures.training_curves(run.history), key="curves")
st.caption("Tokenizer: the RQ-VAE loss (reconstruction + commitment) every 100 steps; it may wobble up when unused "
           "codewords are re-seeded, which is not divergence; the collision rate above is its health check. "
           "Generator: the loss per epoch and validation recall, from which the best epoch is kept.")
st.caption(f"Run directory `{run.path}`. Metrics: full ranking over all items, the user's training items excluded.")
