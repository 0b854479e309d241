"""The pure figure builders and selection parsing, on hand-made tables (no Streamlit, no run)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from app import figures
from app.state import selected_items
from mmgrec_core.generator.beam import BeamStep
from mmgrec_core.recid import RecIDTable


def test_metrics_table_puts_mmgrec_and_its_variant_first_and_orders_metrics():
    metrics = {"models": {"mf": {"test": {"ndcg@10": 0.2, "recall@10": 0.3}},
                          "mmgrec+dense": {"test": {"recall@10": 0.35, "ndcg@10": 0.25}},
                          "mmgrec": {"test": {"recall@10": 0.25, "ndcg@10": 0.15}},
                          "ease": {"test": {"recall@10": 0.4, "ndcg@10": 0.3}}}}
    table = figures.metrics_table(metrics, "test")
    assert table.index.tolist() == ["mmgrec", "mmgrec+dense", "ease", "mf"]
    assert table.columns.tolist() == ["recall@10", "ndcg@10"]
    fig = figures.metrics_bars(table)
    assert {t.name for t in fig.data} == {"mmgrec", "mmgrec+dense", "ease", "mf"}
    assert figures.metrics_bars(figures.metrics_table({}, "test")).layout.annotations      # "no metrics" note


def test_beam_frame_drops_empty_slots_and_links_parents():
    steps = [BeamStep(tokens=torch.tensor([[[3], [1]]]), scores=torch.tensor([[-0.5, -1.0]])),
             BeamStep(tokens=torch.tensor([[[3, 0], [1, 2]]]), scores=torch.tensor([[-0.9, float("-inf")]]))]
    beams = figures.beam_frame(steps)
    assert beams[["level", "prefix", "parent"]].values.tolist() == [[1, "3", "(start)"], [1, "1", "(start)"],
                                                                     [2, "3-0", "3"]]
    assert math.isclose(beams["prob"].iloc[0], math.exp(-0.5), rel_tol=1e-6)
    fig = figures.beam_tree(beams, final={"3-0"})
    names = [t.name for t in fig.data]
    assert names == ["extends", "surviving prefix", "top-K Rec-ID"]
    assert list(fig.data[0].x) == [1, 2, None]                        # one edge: 3 -> 3-0


def test_projection_scatter_carries_ids_and_kinds_in_custom_data():
    points = pd.DataFrame({"x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 0.5], "kind": ["item", "item", "codeword"],
                           "id": [7, 9, 2], "hover": ["a", "b", "w"], "category": ["A", "B", "(codeword)"]})
    fig = figures.projection_scatter(points, "category")
    ids = sorted((int(c[0]), c[1]) for t in fig.data for c in t.customdata)
    assert ids == [(2, "codeword"), (7, "item"), (9, "item")]
    assert fig.layout.dragmode == "lasso"


def test_projection_colours_never_repeat_across_categories_and_codewords_stay_neutral():
    names = [f"cat{i}" for i in range(12)]                       # more than plotly's 10 default colours
    points = pd.DataFrame({"x": np.arange(13.0), "y": np.zeros(13), "kind": ["item"] * 12 + ["codeword"],
                           "id": np.arange(13), "hover": "h", "category": names + [figures.NOT_AN_ITEM]})
    fig = figures.projection_scatter(points, "category")
    colour = {t.name.split(",")[0]: t.marker.color for t in fig.data}
    assert len({colour[n] for n in names}) == 12
    assert colour[figures.NOT_AN_ITEM] == figures.NEUTRAL


def test_selected_items_reads_custom_data_and_expands_codewords():
    codes = np.array([0, 1, 1, 2])                                     # each item's code at the view's level
    points = [{"customdata": [3, "item"], "point_index": 99}, {"customdata": [1, "codeword"]}, {"x": 1}]
    assert selected_items(points, codes).tolist() == [1, 2, 3]
    assert selected_items(points, None).tolist() == [3]
    assert selected_items([], codes).size == 0


def test_recid_tree_has_one_leaf_per_item():
    table = RecIDTable.from_tokens(np.array([[0, 0, 0], [0, 1, 0], [1, 0, 0]]), ["a", "b", "c"],
                                   popularity=np.array([5, 1, 0]))
    category = pd.Series(["x", "x", "y"], name="category")
    nodes = table.tree_frame(category.to_numpy())
    assert nodes["id"].tolist() == ["0", "1", "0/0", "0/1", "1/0", "0/0/0", "0/1/0", "1/0/0"]
    assert nodes["parent"].tolist() == ["", "", "0", "0", "1", "0/0", "0/1", "1/0"]
    assert nodes.loc[nodes["id"] == "0", "popularity"].item() == 6                  # popularity 5 + 1
    assert nodes.loc[nodes["id"] == "0", ["majority", "purity"]].values.tolist() == [["x", 1.0]]
    assert nodes.loc[nodes["id"] == "0/1/0", "label"].item() == "b"
    fig = figures.recid_tree(table, color=category, maxdepth=3)
    tree = fig.data[-1]
    assert sum(i.count("/") == 2 for i in tree.ids) == 3                    # c1 / c2 / item
    assert {t.name for t in fig.data[:-1]} == {"x", "y"}                     # legend entries
    assert len(set(tree.marker.colors)) == 2
    assert list(figures.recid_tree(table, size="popularity").data[-1].values[:2]) == [6, 0]
    assert figures.recid_tree(table, size="popularity", kind="sunburst").data[-1].type == "sunburst"


def test_recid_tree_sends_only_the_levels_shown_under_the_chosen_node():
    table = RecIDTable.from_tokens(np.array([[0, 0, 0], [0, 1, 0], [1, 0, 0]]), ["a", "b", "c"])
    assert list(figures.recid_tree(table, maxdepth=1).data[-1].ids) == ["0", "1"]
    under = figures.recid_tree(table, root=[0], maxdepth=2).data[-1]
    assert list(under.ids) == ["0", "0/0", "0/1", "0/0/0", "0/1/0"]
    assert list(under.parents)[0] == ""                                      # the chosen node is the centre
    assert figures.recid_tree(table, root=[7]).layout.annotations             # nothing under it: a message


def test_explain_figures_and_stats_accept_empty_inputs():
    assert figures.training_curves(pd.DataFrame()).layout.annotations
    assert figures.level_stats({}).layout.annotations
    assert figures.sweep_lines(pd.DataFrame()).layout.annotations
    levels = pd.DataFrame({"level": [1, 2], "code": [3, 4], "distance": [0.1, 0.2], "runner_up": [5, 6],
                           "runner_up_distance": [0.3, 0.25], "residual_before": [1.0, 0.5],
                           "residual_after": [0.5, 0.2], "siblings": [10, 0]})
    assert len(figures.level_margins(levels).data) == 2
    assert list(figures.residual_norms(levels).data[0].y) == [1.0, 0.5, 0.2]
    assert list(figures.siblings(levels).data[0].y) == [10, 0]
