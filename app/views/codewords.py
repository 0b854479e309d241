"""Codewords: UMAP maps of each level's codewords among the residuals they quantize; lasso items to list them."""

import numpy as np
import pandas as pd
import streamlit as st

from app import figures, state
from mmgrec_core.projections import ALL_CODEWORDS, ITEMS

run = state.current_run()
key = (str(run.path), state.stamp(run.path))
items = state.items_frame(*key)
table = run.table

st.title("Codewords")
proj = state.projections(*key)
views = list(dict.fromkeys(proj["view"]))
if views == [ITEMS]:
    st.markdown(f"The **{run.config.tokenizer.name}** tokenizer has no codebooks to map; this is a UMAP of "
                "the item representations the generator reads. Lasso or box-select items to list them.")
else:
    st.markdown("Level *m* of the residual quantizer picks the codeword nearest to what levels 1..m-1 left over "
                "(level 1: the item's latent). Each map places a level's codewords (larger marks) among those "
                "residuals; *all codewords* maps every codebook together. Lasso or box-select items or codewords "
                "to list the items.")

a, b = st.columns(2)
view = a.selectbox("Map", views, key="umap_view", help="level m: the residuals entering level m and its codewords")
points = proj[proj["view"] == view].reset_index(drop=True)
level = int(points["level"].iloc[0]) if len(points) else 0
codes = table.tokens[:, level - 1] if 1 <= level <= table.levels and view != ALL_CODEWORDS else None
usage = np.bincount(table.tokens[:, level - 1], minlength=table.codebook_size) if codes is not None else None

is_item = points["kind"] == "item"
ids = points["id"].to_numpy()
hover = np.where(is_item, table.names[np.where(is_item, ids, 0)].astype(str),
                 [f"codeword {i} of level {lv}" for i, lv in zip(ids, points["level"])])
points["hover"] = hover
choices = ["kind"]
if codes is not None:
    points["code"] = np.where(is_item, codes[np.where(is_item, ids, 0)], ids).astype(str)
    points["usage"] = np.where(is_item, usage[codes[np.where(is_item, ids, 0)]], usage[np.clip(ids, 0, len(usage) - 1)])
    choices += ["code", "usage"]
if view == ALL_CODEWORDS:
    points["codebook level"] = points["level"].astype(str)
    all_usage = [np.bincount(table.tokens[:, m], minlength=table.codebook_size) for m in range(table.levels)]
    points["usage"] = [int(all_usage[lv - 1][i]) for i, lv in zip(ids, points["level"])]
    choices = ["codebook level", "usage"]
else:
    for col in state.item_columns(items):
        points[col] = np.where(is_item, items[col].astype(str).to_numpy()[np.where(is_item, ids, 0)],
                               figures.NOT_AN_ITEM)
        choices.append(col)
color = b.selectbox("Colour by", choices, key="umap_colour",
                    index=choices.index("category") if "category" in choices else 0)

event = st.plotly_chart(figures.projection_scatter(points, color, title=f"UMAP: {view}"), key=f"umap_{view}",
                        on_select="rerun", selection_mode=("lasso", "box", "points"))
picked = state.selected_items(event.selection.points if event else [], codes)

st.subheader("Selection")
if len(picked) == 0:
    st.info("Nothing selected yet: drag a lasso or a box on the map (the toolbar switches between them), or "
            "click a point. Codewords select the items assigned to them.")
else:
    sel = items.iloc[picked]
    show = ["item", "name", "rec_id", "popularity", *state.item_columns(items)]
    st.markdown(f"**{len(sel):,} items selected**" + (
        "; most common " + ", ".join(f"{c}: {sel[c].value_counts().index[0]}"
                                     for c in state.item_columns(items)[:2]) if len(sel) else ""))
    st.dataframe(sel[show], hide_index=True, width="stretch", height=320, key="selection_table")
    st.download_button("Export CSV", pd.DataFrame(sel[show]).to_csv(index=False).encode(),
                       file_name=f"selection_{view.replace(' ', '_')}.csv", mime="text/csv")
