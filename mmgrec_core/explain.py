"""Why an item got its Rec-ID: per-level choices and margins, siblings, collision rank, modality attribution.

Works with any `Explainable` tokenizer (graph_rqvae, rqvae).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .recid import RecIDTable
from .tokenizers import Explainable


@dataclass(frozen=True)
class Explanation:
    item: int
    name: str
    rec_id: tuple[int, ...]
    levels: pd.DataFrame      # one row per level: code, distance, runner_up, margin, residual norms, siblings
    group: pd.DataFrame       # the collision group in p order: item, name, popularity, p
    ablation: pd.DataFrame    # one row per removed input: codes without it and the levels that change

    @property
    def fragile_level(self) -> int:
        """1-based level with the smallest margin: where a small change of input would move the Rec-ID."""
        return int(self.levels["margin"].idxmin()) + 1


def explain(tokenizer: Explainable, table: RecIDTable, item: int) -> Explanation:
    """Explain `item`'s Rec-ID under a fitted `tokenizer` and its `table`."""
    if not isinstance(tokenizer, Explainable):
        raise TypeError(f"{tokenizer.name} Rec-IDs have no per-level codebook trace; explanations cover "
                        f"graph_rqvae and rqvae")
    if not 0 <= item < table.num_items:
        raise ValueError(f"item {item} is not in the catalog (0..{table.num_items - 1})")
    rec_id = table.rec_id(item)
    trace = {k: v[0].cpu().numpy() for k, v in tokenizer.trace(item).items()}
    m = table.levels
    levels = pd.DataFrame({
        "level": np.arange(1, m + 1),
        "code": trace["codes"], "distance": trace["dist"],
        "runner_up": trace["runner_up"], "runner_up_distance": trace["runner_up_dist"],
        "margin": trace["runner_up_dist"] - trace["dist"],
        "residual_before": trace["residual_norm"][:-1], "residual_after": trace["residual_norm"][1:],
        "siblings": [len(table.prefix_items(rec_id[:d])) - 1 for d in range(1, m + 1)],
    })
    members = table.prefix_items(rec_id[:m])
    members = members[np.argsort(table.tokens[members, -1])]
    group = pd.DataFrame({"item": members, "name": table.names[members],
                          "popularity": table.popularity[members], "p": table.tokens[members, -1]})
    rows = []
    for removed, codes in tokenizer.ablations(item).items():
        changed = [lvl + 1 for lvl in range(m) if codes[lvl] != rec_id[lvl]]
        rows.append({"without": removed, "codes": tuple(int(c) for c in codes), "changed_levels": changed})
    return Explanation(item=item, name=str(table.names[item]), rec_id=rec_id, levels=levels, group=group,
                       ablation=pd.DataFrame(rows))
