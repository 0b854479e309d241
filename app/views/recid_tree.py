"""Rec-ID tree: choose a node (c1, c2, ...) to centre the chart on it and list its items; search by name or prefix."""

import re

import streamlit as st

from app import figures, state

run = state.current_run()
key = (str(run.path), state.stamp(run.path))
items = state.items_frame(*key)
levels = run.table.levels
columns = state.item_columns(items)
code_cols = [f"c{m}" for m in range(1, levels + 1)]
show = ["item", "name", "rec_id", "popularity", *columns]

st.title("Rec-ID tree")
st.markdown(f"Each item's Rec-ID is a path from the root: {levels} semantic codes, then the collision token `p` "
            f"that tells apart items sharing all {levels} codes. Choose a node to centre the chart on it and "
            "list its items; hover a tile for its size and category mix.")

st.subheader("Choose a node")
picked: list[int] = []
sub = items
for m, col in enumerate(st.columns(levels)):
    counts = sub[code_cols[m]].value_counts().sort_index()
    options = [None, *counts.index.tolist()]
    code = col.selectbox(code_cols[m], options, key=f"node_c{m + 1}",
                         format_func=lambda c, n=counts: "(any)" if c is None else f"{c} ({n[c]} items)")
    if code is None:
        break
    picked.append(int(code))
    sub = sub[sub[code_cols[m]] == code]
prefix = "-".join(map(str, picked)) or "(root)"

c1, c2, c3, c4 = st.columns(4)
kind = c1.selectbox("Chart", ["treemap", "sunburst", "icicle"], key="tree_kind")
size = c2.selectbox("Size by", ["items", "popularity"], key="tree_size")
color = c3.selectbox("Colour by", ["(none)", *columns], index=1 + columns.index("category")
                     if "category" in columns else 0)
below = levels + 1 - len(picked)
depth = c4.slider("Levels shown", 1, max(below, 2), 1 if not picked else min(2, below), disabled=below < 2,
                  help="Levels below the chosen node. The root's second level alone is nearly one tile per item: "
                       "choose a node to look deeper.")
st.plotly_chart(figures.recid_tree(run.table, kind=kind, size=size, color=None if color == "(none)" else items[color],
                                   maxdepth=depth, root=picked), key="tree")

left, right = st.columns(2)
with left:
    st.markdown(f"**{len(sub):,} items** under `{prefix}`"
                + (f", {int(sub['popularity'].sum()):,} training interactions" if len(sub) else ""))
    st.dataframe(sub.sort_values([*code_cols, "p"])[show], hide_index=True, width="stretch", height=320)
with right:
    st.subheader("Search")
    example = "-".join(map(str, items[code_cols[:2]].value_counts().index[0]))     # a prefix that exists
    query = st.text_input("Item name or Rec-ID prefix", placeholder=f"e.g. Yoga, or {example}", key="tree_search")
    if query.strip():
        q = query.strip()
        if re.fullmatch(r"\d+([\s,/-]+\d+)*", q):
            tokens = [int(t) for t in re.split(r"[\s,/-]+", q)]
            found = items.iloc[run.table.prefix_items(tokens)] if len(tokens) <= levels + 1 else items.iloc[:0]
            st.caption(f"Rec-IDs starting with `{'-'.join(map(str, tokens))}`")
        else:
            found = items[items["name"].str.contains(q, case=False, regex=False)]
            st.caption(f"Names containing {state.plain(q, 80)}")
        if found.empty:
            st.info(f"No item matches. Prefixes are codes separated by '-', e.g. `{example}`; names match in part.")
        else:
            st.dataframe(found.sort_values([*code_cols, "p"])[show].head(500), hide_index=True, width="stretch",
                         height=320)
            first = int(found["item"].iloc[0])
            st.page_link("views/explain.py", label=f"Explain {found['name'].iloc[0]}'s Rec-ID",
                         icon=":material/help:", query_params={"item": str(first)})
            st.caption(f"{len(found):,} items" + (" (first 500 shown)" if len(found) > 500 else ""))
    else:
        st.caption("Type part of a name, or a Rec-ID prefix.")
