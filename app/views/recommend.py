"""Recommend: one user's history, the beam search level by level, the top-K beside MF and LightGCN."""

import numpy as np
import pandas as pd
import streamlit as st
import torch

from app import figures, state

run = state.current_run()
key = (str(run.path), state.stamp(run.path))
items, users = state.items_frame(*key), state.users_frame(*key)
num_users = run.data.num_users
cols = state.item_columns(items)

st.title("Recommend")

from_url = state.query_index("user", num_users, "user")
if from_url is not None and st.session_state.get("_user_from_url") != (key, from_url):
    st.session_state["_user_from_url"] = (key, from_url)                # a new URL wins once, then the widgets
    st.session_state["user_choice"] = from_url
if "user_choice" not in st.session_state:           # widget state is dropped on other pages; "_user" is not
    st.session_state["user_choice"] = st.session_state.get("_user")
current = st.session_state["user_choice"]
if not isinstance(current, int) or not 0 <= current < num_users:             # first visit, or another run's
    st.session_state["user_choice"] = int(users.sort_values("test", ascending=False)["user"].iloc[0])

def random_user() -> None:
    st.session_state["user_choice"] = int(np.random.default_rng().integers(num_users))


def user_from_table() -> None:
    rows = st.session_state["user_table"].selection.rows
    if rows:
        st.session_state["user_choice"] = int(st.session_state["_user_table_ids"][rows[0]])


a, b, c = st.columns([2, 1, 2])
user = int(a.number_input(f"User (0 to {num_users - 1})", 0, num_users - 1, key="user_choice"))
b.button("Random user", on_click=random_user, width="stretch")
k = c.slider("Top-K", 1, 20, 10)
with st.expander("Find a user"):
    query = st.text_input("Users who interacted with an item whose name contains", placeholder="e.g. Yoga")
    found = users
    if query.strip():
        hit = items.loc[items["name"].str.contains(query.strip(), case=False, regex=False), "item"].to_numpy()
        u, i = run.data.pairs("train")
        found = users[users["user"].isin(np.unique(u[np.isin(i, hit)]))]
    found = found.head(1000).reset_index(drop=True)
    st.session_state["_user_table_ids"] = found["user"].to_numpy()
    if found.empty:
        st.info("No user matches.")
    else:
        st.dataframe(found, hide_index=True, width="stretch", height=240, key="user_table",
                     on_select=user_from_table, selection_mode="single-row")
        st.caption("Click a row to pick that user.")
state.remember("user", user)
st.session_state["_user"] = user
st.session_state["_user_from_url"] = (key, user)              # our own URL write is not a new link

train = state.user_items(*key, user, "train")
test = set(state.user_items(*key, user, "test").tolist())
valid = set(state.user_items(*key, user, "valid").tolist())
st.markdown(f"User **{user}**: {len(train)} training items, {len(valid)} validation, {len(test)} test items.")

result = run.recommender.search(torch.tensor([user]), k, return_steps=True)
recs = result.items[0].cpu().numpy()
scores = result.scores[0].float().cpu().numpy()
beams = figures.beam_frame(result.steps)


def listing(ids: np.ndarray, score: np.ndarray | None = None) -> pd.DataFrame:
    """Rank, hit mark, name, Rec-ID (and score, category, item id) of a top-K list; -1 pads are dropped."""
    ids = ids[ids >= 0]
    out = pd.DataFrame({"rank": np.arange(1, len(ids) + 1),
                        "hit": ["✓ test" if i in test else "valid" if i in valid else "" for i in ids]})
    out = pd.concat([out, items.iloc[ids][["name", "rec_id", *cols[:1], "item"]].reset_index(drop=True)], axis=1)
    if score is not None:
        out.insert(4, "log_prob", score[:len(ids)])
    return out


def hit_style(frame: pd.DataFrame):
    return frame.style.map(lambda v: "font-weight: bold" if v else "", subset=["hit"]).format(precision=3)


tab_recs, tab_beam, tab_hist = st.tabs(["Top-K", "Beam search", "History"])
with tab_recs:
    lists = {"MMGRec": (recs, scores)}
    for name, label in (("mf", "MF"), ("lightgcn", "LightGCN")):
        if name in run.baseline_recs:
            lists[label] = (run.baseline_recs[name][user, :k].numpy().astype(np.int64), None)
    panes = st.columns(len(lists))
    for pane, (label, (ids, score)) in zip(panes, lists.items()):
        frame = listing(ids, score)
        hits = int((frame["hit"] == "✓ test").sum())
        pane.markdown(f"**{label}**: {hits} of {len(test)} test items in the top {k}")
        pane.dataframe(hit_style(frame), hide_index=True, width="stretch", key=f"list_{label}")
    shown = [int(i) for i in recs if i >= 0]
    if shown:
        e1, e2 = st.columns([2, 1])
        why = e1.selectbox("Why did an item get its Rec-ID?", shown, key="why_item",
                           format_func=lambda i: f"{items['name'].iloc[i]} ({items['rec_id'].iloc[i]})")
        e2.page_link("views/explain.py", label="Explain it", icon=":material/help:",
                     query_params={"item": str(why), "user": str(user)})
    missing = [n for n in ("mf", "lightgcn") if n not in run.baseline_recs]
    if missing:
        st.caption(f"This run has no stored lists for {', '.join(missing)} (train it with those baselines).")
    if len(lists) > 1:
        overlap = {label: len(set(recs.tolist()) & set(ids.tolist())) for label, (ids, _) in lists.items()
                   if label != "MMGRec"}
        st.caption("Items shared with MMGRec's list: " + ", ".join(f"{n} {v}" for n, v in overlap.items())
                   + ". `hit` marks items the user has in the test (or validation) split.")
with tab_beam:
    st.markdown(f"At each level the generator scores every next token; the trie keeps only tokens that lead to an "
                f"item the user has not seen, and the best {int(max(run.recommender.beam, k))} prefixes survive. "
                f"A prefix's score is the sum of its tokens' log-probabilities.")
    final = {"-".join(map(str, run.table.rec_id(i))) for i in recs if i >= 0}
    st.plotly_chart(figures.beam_tree(beams, final), key="beam_tree")
    level_tabs = st.tabs([f"c{d}" if d <= run.table.levels else "p" for d in sorted(beams["level"].unique())])
    for tab, (_, part) in zip(level_tabs, beams.groupby("level")):
        with tab:
            counts = [len(run.table.prefix_items([int(t) for t in p.split("-")])) for p in part["prefix"]]
            tab.dataframe(part.assign(items_under=counts).drop(columns="level"), hide_index=True, width="stretch")
with tab_hist:
    hist = items.iloc[train][["item", "name", "rec_id", "popularity", *cols]]
    st.dataframe(hist, hide_index=True, width="stretch", height=360)
    if "category" in hist.columns and len(hist):
        st.caption("Categories in the history: " + ", ".join(f"{c} ({n})" for c, n in
                                                              hist["category"].value_counts().head(5).items()))
