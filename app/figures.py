"""Pure plotly figure builders: tables in, `go.Figure` out; no Streamlit, no run loading, no colours of our own.

Colours come from the active plotly template (Streamlit swaps in its light or dark theme when the chart is drawn),
so every figure reads in dark mode too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from mmgrec_core.recid import RecIDTable

METRIC_ORDER = ["recall@5", "ndcg@5", "recall@10", "ndcg@10", "recall@20", "ndcg@20"]


def _empty(title: str, message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(title=title, xaxis_visible=False, yaxis_visible=False)
    return fig


# ---- overview ------------------------------------------------------------------------------------------------

def metrics_table(metrics: dict, split: str = "test") -> pd.DataFrame:
    """Models x metrics of one split from a metrics.json dict (mmgrec and its variants first, then the baselines)."""
    models = metrics.get("models", {})
    order = sorted(models, key=lambda m: (not m.startswith("mmgrec"), m))
    rows = {m: {k: v for k, v in models[m].get(split, {}).items()} for m in order}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    cols = [c for c in METRIC_ORDER if c in frame.columns] + [c for c in frame.columns if c not in METRIC_ORDER]
    frame = frame[cols] if len(frame) else frame
    frame.index.name = "model"
    return frame


def metrics_bars(table: pd.DataFrame, metrics: tuple[str, ...] = ("recall@10", "ndcg@10", "recall@20")
                 ) -> go.Figure:
    """Grouped bars: one group per metric, one bar per model."""
    keep = [m for m in metrics if m in table.columns]
    if table.empty or not keep:
        return _empty("Metrics", "no metrics in this run")
    long = table[keep].reset_index().melt(id_vars="model", var_name="metric", value_name="value")
    fig = px.bar(long, x="metric", y="value", color="model", barmode="group", text_auto=".3f",
                 title="MMGRec beside the baselines")
    fig.update_layout(yaxis_title=None, xaxis_title=None, legend_title=None)
    return fig


def training_curves(history: pd.DataFrame) -> go.Figure:
    """Losses per epoch of each stage, and the generator's validation recall, in one figure of small panels."""
    if history is None or history.empty or "stage" not in history.columns:
        return _empty("Training curves", "no history.csv in this run")
    skip = {"stage", "epoch", "seconds"}
    long = history.melt(id_vars=["stage", "epoch"], value_vars=[c for c in history.columns if c not in skip],
                        var_name="series", value_name="value").dropna()
    if long.empty:
        return _empty("Training curves", "the history is empty")
    long["panel"] = long["stage"] + ": " + np.where(long["series"].str.startswith("valid"), "validation", "loss")
    fig = px.line(long, x="epoch", y="value", color="series", facet_col="panel", facet_col_wrap=3, markers=True,
                  title="Training curves")
    fig.update_yaxes(matches=None, showticklabels=True, title=None)
    fig.update_xaxes(matches=None, showticklabels=True)
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))
    return fig


# ---- Rec-ID tree ---------------------------------------------------------------------------------------------

def recid_tree(table: RecIDTable, *, kind: str = "treemap", size: str = "items",
               color: pd.Series | None = None, maxdepth: int = 2, root: Sequence[int] = ()) -> go.Figure:
    """The subtree under the prefix `root` (c1 -> c2 -> ... -> cM -> items, `RecIDTable.tree_frame`), `maxdepth`
    levels below it, as a treemap, sunburst or icicle.

    Only the nodes shown are sent to the browser: the whole demo tree is thousands of nodes (half a megabyte and
    seconds to draw), its first level 128 tiles. `size` is "items" (count) or "popularity" (training
    interactions). With a categorical `color` (one value per item, named), each node takes the colour of its
    most common value (the template's colourway, so the theme decides the actual colours) and its hover says how
    pure the node is; a legend names the values.
    """
    if table.num_items == 0:
        return _empty("Rec-ID tree", "no items")
    nodes = table.tree_frame(None if color is None else color.to_numpy())
    top = "/".join(map(str, root))
    inside = nodes["id"].str.startswith(top + "/") if root else pd.Series(True, index=nodes.index)
    nodes = nodes[(inside | (nodes["id"] == top)) & (nodes["depth"] <= len(root) + maxdepth)].copy()
    if nodes.empty:
        return _empty("Rec-ID tree", f"no items under {'-'.join(map(str, root))}")
    nodes.loc[nodes["id"] == top, "parent"] = ""                       # the chosen prefix is the centre
    values = nodes["items"] if size == "items" else nodes["popularity"].clip(lower=0)
    trace = {"sunburst": go.Sunburst, "icicle": go.Icicle, "treemap": go.Treemap}[kind]
    unit = "items" if size == "items" else "interactions"
    hover = "%{id}<br>%{label}<br>%{value:.0f} " + unit
    marker: dict = {"line": {"width": 0 if table.num_items > 300 else 1}}    # borders would hide thin wedges
    fig = go.Figure()
    custom = None
    if color is not None:
        names = sorted(nodes["majority"].unique())
        palette = _colorway(len(names))
        colour_of = {v: palette[i % len(palette)] for i, v in enumerate(names)}
        marker["colors"] = nodes["majority"].map(colour_of).tolist()
        hover += f"<br>{color.name}: %{{customdata[0]}} (%{{customdata[1]:.0%}} of its items)"
        custom = nodes[["majority", "purity"]].to_numpy()
        for v in names:                                    # legend entries: the tree traces have no legend
            fig.add_scatter(x=[None], y=[None], mode="markers", name=v, marker=dict(color=colour_of[v], size=10))
    fig.add_trace(trace(ids=nodes["id"], parents=nodes["parent"], labels=nodes["label"], values=values,
                        branchvalues="total", maxdepth=maxdepth, marker=marker, customdata=custom,
                        hovertemplate=hover + "<extra></extra>"))
    fig.update_layout(margin=dict(t=30, l=0, r=0, b=0), title=f"Rec-ID tree, sized by {unit}", height=640,
                      xaxis_visible=False, yaxis_visible=False, legend_title=None if color is None else color.name,
                      plot_bgcolor="rgba(0,0,0,0)")
    return fig


def _colorway(n: int) -> list[str]:
    """n distinct colours: the active plotly template's colourway, or a plotly palette long enough for n."""
    import plotly.io as pio

    template = pio.templates[pio.templates.default] if pio.templates.default else None
    way = list(template.layout.colorway or []) if template is not None else []
    if len(way) >= n:
        return way
    palettes = (px.colors.qualitative.Plotly, px.colors.qualitative.Light24, px.colors.qualitative.Alphabet)
    return next((list(p) for p in palettes if len(p) >= n), list(palettes[-1]))


# ---- collisions ----------------------------------------------------------------------------------------------

def sweep_lines(sweep: pd.DataFrame, y: str = "collision_rate") -> go.Figure:
    """`y` against codebook size, one line per tokenizer, dashed by number of levels."""
    if sweep is None or sweep.empty:
        return _empty(y, "no sweep results")
    frame = sweep.sort_values(["tokenizer", "levels", "codebook"]).copy()
    frame["levels"] = frame["levels"].astype(str)
    fig = px.line(frame, x="codebook", y=y, color="tokenizer", line_dash="levels", markers=True, log_x=True,
                  title=f"{y.replace('_', ' ')} vs codebook size")
    fig.update_xaxes(tickvals=sorted(frame["codebook"].unique()), title="codewords per level")
    if y in ("collision_rate", "unique_prefix_share", "usage"):
        fig.update_yaxes(tickformat=".0%")
    return fig


def level_stats(stats: dict) -> go.Figure:
    """Codebook usage and perplexity per level (from tokenizer_stats.json)."""
    usage, perplexity = stats.get("usage") or [], stats.get("perplexity") or []
    if not usage and not perplexity:
        return _empty("Codebook health", "no tokenizer statistics in this run")
    levels = [f"level {m + 1}" for m in range(max(len(usage), len(perplexity)))]
    fig = go.Figure()
    if usage:
        fig.add_bar(x=levels[:len(usage)], y=usage, name="usage (share of codewords used)", yaxis="y")
    if perplexity:
        fig.add_scatter(x=levels[:len(perplexity)], y=perplexity, name="perplexity (effective codewords)",
                        mode="lines+markers", yaxis="y2")
    fig.update_layout(title="Codebook health per level", yaxis=dict(title="usage", tickformat=".0%", range=[0, 1.05]),
                      yaxis2=dict(title="perplexity", overlaying="y", side="right", rangemode="tozero"),
                      legend=dict(orientation="h", y=-0.2))
    return fig


def group_sizes(group_size: np.ndarray) -> go.Figure:
    """How many items live in collision groups of each size (1 = a unique semantic prefix)."""
    sizes, counts = np.unique(np.asarray(group_size), return_counts=True)
    frame = pd.DataFrame({"group size": sizes.astype(str), "items": counts})
    fig = px.bar(frame, x="group size", y="items", title="Items by collision-group size", text_auto=True)
    fig.update_xaxes(type="category")
    return fig


# ---- codewords -----------------------------------------------------------------------------------------------

NOT_AN_ITEM = "(codeword)"      # the value of an item attribute on a codeword's row
NEUTRAL = "#8c8c8c"             # grey: readable on light and dark themes, in none of the qualitative palettes


def projection_scatter(points: pd.DataFrame, color: str, *, title: str = "") -> go.Figure:
    """Items and codewords of one projection view; `custom_data` holds [id, kind] for selections.

    `points` has x, y, kind ("item" | "codeword"), id, hover, and the `color` column. Codewords are drawn larger
    and on top, so the lasso can take either.
    """
    if points.empty:
        return _empty(title, "nothing to project")
    frame = points.copy()
    discrete = frame[color].dtype == object or str(frame[color].dtype) in ("category", "string", "str", "bool")
    colours = {}
    if discrete:                        # one colour per value while the palettes last; codewords stay neutral
        frame[color] = frame[color].astype(str)
        values = sorted(set(frame[color]) - {NOT_AN_ITEM})
        palette = _colorway(len(values))
        colours = {v: palette[i % len(palette)] for i, v in enumerate(values)} | {NOT_AN_ITEM: NEUTRAL}
    frame["size"] = np.where(frame["kind"] == "codeword", 9.0, 4.0)
    fig = px.scatter(frame, x="x", y="y", color=color, symbol="kind", size="size", size_max=9,
                     color_discrete_map=colours,
                     custom_data=["id", "kind"], hover_name="hover", title=title,
                     hover_data={"x": False, "y": False, "size": False, "kind": False} | {color: True},
                     category_orders={"kind": ["item", "codeword"]}, render_mode="webgl"
                     if len(frame) > 5000 else "auto")
    fig.update_traces(marker=dict(line=dict(width=0)))
    fig.update_layout(dragmode="lasso", xaxis=dict(visible=False), yaxis=dict(visible=False),
                      legend=dict(itemsizing="constant"), margin=dict(t=40, l=0, r=0, b=0))
    return fig


# ---- recommend -----------------------------------------------------------------------------------------------

def beam_frame(steps, table_tokens: np.ndarray | None = None, row: int = 0) -> pd.DataFrame:
    """The beams alive after each level for batch row `row`: level, rank, prefix, parent, log_prob, prob.

    `steps` are `BeamStep`s (tokens [B, W, d], scores [B, W]); empty slots (-inf) are dropped.
    """
    rows = []
    for d, step in enumerate(steps, start=1):
        tokens = step.tokens[row].cpu().numpy()
        scores = step.scores[row].float().cpu().numpy()
        for rank, (tok, s) in enumerate(zip(tokens, scores), start=1):
            if not np.isfinite(s):
                continue
            prefix = "-".join(map(str, tok[:d]))
            parent = "-".join(map(str, tok[:d - 1])) if d > 1 else "(start)"
            rows.append({"level": d, "rank": rank, "prefix": prefix, "parent": parent,
                         "log_prob": float(s), "prob": float(np.exp(s))})
    return pd.DataFrame(rows, columns=["level", "rank", "prefix", "parent", "log_prob", "prob"])


def beam_tree(beams: pd.DataFrame, final: set[str] | None = None) -> go.Figure:
    """Each level's surviving prefixes (x = level, y = log-probability), joined to the prefix they extend.

    `final` names the whole Rec-IDs that made the top-K; they are drawn as a separate, highlighted trace.
    """
    if beams.empty:
        return _empty("Beam search", "no beams")
    fig = go.Figure()
    pos = {(r.level, r.prefix): r.log_prob for r in beams.itertuples()}
    xs, ys = [], []
    for r in beams.itertuples():
        if r.level > 1 and (r.level - 1, r.parent) in pos:
            xs += [r.level - 1, r.level, None]
            ys += [pos[(r.level - 1, r.parent)], r.log_prob, None]
    fig.add_scatter(x=xs, y=ys, mode="lines", line=dict(width=1), opacity=0.4, hoverinfo="skip",
                    name="extends")
    final = final or set()
    keep = beams["prefix"].isin(final) & (beams["level"] == beams["level"].max())
    for name, part in (("surviving prefix", beams[~keep]), ("top-K Rec-ID", beams[keep])):
        if len(part):
            fig.add_scatter(x=part["level"], y=part["log_prob"], mode="markers", name=name,
                            text=part["prefix"], marker=dict(size=9 if name == "top-K Rec-ID" else 6),
                            hovertemplate="%{text}<br>log-prob %{y:.2f}<extra></extra>")
    levels = sorted(beams["level"].unique())
    fig.update_layout(title="Beam search, level by level", xaxis=dict(
        tickvals=levels, ticktext=[f"c{d}" if d < max(levels) else "p" for d in levels], title="token"),
        yaxis_title="log-probability of the prefix", legend=dict(orientation="h", y=-0.2))
    return fig


# ---- explain -------------------------------------------------------------------------------------------------

def level_margins(levels: pd.DataFrame) -> go.Figure:
    """Per level, the distance to the chosen codeword and to the runner-up (the gap is the margin)."""
    if levels.empty:
        return _empty("Margins", "no levels")
    x = [f"level {v}" for v in levels["level"]]
    fig = go.Figure()
    fig.add_bar(x=x, y=levels["distance"], name="chosen codeword",
                text=[f"c={c}" for c in levels["code"]], textposition="outside")
    fig.add_bar(x=x, y=levels["runner_up_distance"], name="runner-up",
                text=[f"c={c}" for c in levels["runner_up"]], textposition="outside")
    fig.update_layout(barmode="group", title="Chosen codeword vs runner-up",
                      yaxis_title="squared distance", legend=dict(orientation="h", y=-0.2))
    return fig


def residual_norms(levels: pd.DataFrame) -> go.Figure:
    """The residual's norm before level 1 and after each level: how much each codeword explains."""
    if levels.empty:
        return _empty("Residuals", "no levels")
    y = [float(levels["residual_before"].iloc[0])] + levels["residual_after"].astype(float).tolist()
    x = ["latent"] + [f"after level {v}" for v in levels["level"]]
    fig = px.line(x=x, y=y, markers=True, title="Residual norm, level by level",
                  labels={"x": "", "y": "||residual||"})
    fig.update_yaxes(rangemode="tozero")
    return fig


def siblings(levels: pd.DataFrame) -> go.Figure:
    """How many other items share the item's prefix at each depth."""
    if levels.empty:
        return _empty("Siblings", "no levels")
    x = ["c1", *[f"c1..c{v}" for v in levels["level"].iloc[1:]]]
    fig = px.bar(x=x, y=levels["siblings"], text_auto=True, title="Other items sharing each prefix",
                 labels={"x": "prefix", "y": "items"})
    return fig
