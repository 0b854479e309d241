"""Explain: why one item got its Rec-ID, level by level, with the inputs that would move it."""

import streamlit as st

from app import figures, state
from mmgrec_core.tokenizers import Explainable

run = state.current_run()
key = (str(run.path), state.stamp(run.path))
items = state.items_frame(*key)
table = run.table
num_items = table.num_items

st.title("Why this Rec-ID?")

from_url = state.query_index("item", num_items, "item")
if from_url is not None and st.session_state.get("_item_from_url") != (key, from_url):
    st.session_state["_item_from_url"] = (key, from_url)
    st.session_state["item_choice"] = from_url
if "item_choice" not in st.session_state:
    st.session_state["item_choice"] = st.session_state.get("_item")
current = st.session_state["item_choice"]
if not isinstance(current, int) or not 0 <= current < num_items:
    st.session_state["item_choice"] = int(items["popularity"].idxmax())


def item_from_search() -> None:
    picked = st.session_state.get("item_search_pick")
    if picked is not None:
        st.session_state["item_choice"] = int(picked)


a, b = st.columns([1, 2])
item = int(a.number_input(f"Item (0 to {num_items - 1})", 0, num_items - 1, key="item_choice"))
query = b.text_input("Find an item by name", placeholder="e.g. Yoga")
if query.strip():
    hits = items.loc[items["name"].str.contains(query.strip(), case=False, regex=False), ["item", "name"]].head(200)
    if hits.empty:
        b.info("No item name contains that.")
    else:
        names = dict(zip(hits["item"], hits["name"]))
        b.selectbox("Matches", list(names), index=None, key="item_search_pick", on_change=item_from_search,
                    format_func=lambda i: f"{names[i]} (item {i})", placeholder="choose one")
state.remember("item", item)
st.session_state["_item"] = item
st.session_state["_item_from_url"] = (key, item)              # our own URL write is not a new link

row = items.iloc[item]
rec_id = table.rec_id(item)
st.markdown(f"### {row['name']}\nRec-ID **`{'-'.join(map(str, rec_id))}`** "
            + " ".join(f"· {c}: {row[c]}" for c in state.item_columns(items)[:3])
            + f" · {int(row['popularity'])} training interactions")

if not isinstance(run.tokenizer, Explainable):
    st.info(f"This run's tokenizer (**{run.config.tokenizer.name}**) keeps no per-level codebook trace, so "
            "its Rec-IDs cannot be explained level by level; explanations cover graph_rqvae and rqvae runs. The "
            "item's siblings are listed below.")
    for d in range(1, table.levels + 1):
        st.markdown(f"- prefix `{'-'.join(map(str, rec_id[:d]))}` is shared by "
                    f"{len(table.prefix_items(rec_id[:d])) - 1} other items")
    st.stop()

try:
    ex = state.explanation(*key, item)
except (TypeError, ValueError) as e:
    st.info(f"No explanation for this item: {e}")
    st.stop()

lv = ex.levels
sentences = []
for r in lv.itertuples():
    rel = r.margin / r.runner_up_distance if r.runner_up_distance > 0 else 1.0
    verdict = "a close call" if rel < 0.2 else "a clear choice" if rel > 0.6 else "a fair margin"
    choice = (f"the runner-up, {r.runner_up}, was {r.margin:.3f} further: {verdict}" if r.margin >= 0 else
              f"codeword {r.runner_up} is {-r.margin:.3f} nearer, but its prefix was full (balanced codes keep "
              f"every Rec-ID distinct), so the item took the nearest codeword with room")
    sentences.append(
        f"**Level {r.level}** chose codeword **{r.code}** (squared distance {r.distance:.3f}); {choice}. The "
        f"residual shrank from {r.residual_before:.3f} to {r.residual_after:.3f}; {r.siblings} other items share "
        f"the prefix so far.")
fragile = ex.fragile_level
sentences.append(f"The smallest margin is at **level {fragile}**: a small change of the item's inputs would move "
                 f"its Rec-ID there first.")
rank = int(rec_id[-1])
size = len(ex.group)
if size > 1:
    sentences.append(f"It shares all {table.levels} semantic codes with {size - 1} other items; its collision token "
                     f"p = {rank} ranks it {rank + 1} of {size} in that group ({table.collision} order).")
else:
    sentences.append(f"No other item shares all {table.levels} semantic codes, so its collision token is p = 0.")
st.markdown("\n".join(f"- {s}" for s in sentences))

left, mid, right = st.columns(3)
left.plotly_chart(figures.level_margins(lv), key="margins")
mid.plotly_chart(figures.residual_norms(lv), key="residuals")
right.plotly_chart(figures.siblings(lv), key="siblings")

c1, c2 = st.columns(2)
with c1:
    st.subheader("Which input moves each token")
    ab = ex.ablation
    if ab.empty:
        st.info("No ablation for this tokenizer.")
    else:
        lines = []
        for r in ab.itertuples():
            what = "its CF (graph) embedding" if r.without == "cf" else f"its {r.without} features"
            if r.changed_levels:
                moved = ", ".join(f"level {m} ({rec_id[m - 1]} -> {r.codes[m - 1]})" for m in r.changed_levels)
                lines.append(f"Without {what}, {moved} would change.")
            else:
                lines.append(f"Without {what}, the codes stay the same.")
        first = {r.without: min(r.changed_levels) for r in ab.itertuples() if r.changed_levels}
        if first:
            top = min(first, key=first.get)
            lines.insert(0, f"**{'The CF signal' if top == 'cf' else top.capitalize() + ' features'}** matter "
                            f"most here: removing {'it' if top == 'cf' else 'them'} moves level {first[top]} "
                            f"first.")
        st.markdown("\n".join(f"- {s}" for s in lines))
        st.dataframe(ab.assign(codes=ab["codes"].map(lambda c: "-".join(map(str, c))),
                               changed_levels=ab["changed_levels"].map(lambda v: ", ".join(map(str, v)) or "none")),
                     hide_index=True, width="stretch")
        st.caption("Each row replaces one input by its catalog mean and encodes the item again.")
with c2:
    st.subheader("Collision group")
    group = ex.group.assign(this=lambda g: g["item"].eq(item).map({True: "<- this item", False: ""}))
    st.dataframe(group, hide_index=True, width="stretch")
    st.subheader("Per level")
    st.dataframe(lv, hide_index=True, width="stretch")
