"""Headroom ladder: where a generative recommender loses, rung by rung, with the same encoder and training.

    python benchmarks/ladder.py --dataset demo --out benchmarks/results/ladder_demo.csv

Every rung trains the default generator (same encoder inputs, recipe, seed) on different Rec-IDs:

1. `flat`: each item's Rec-ID is its id, one level of I tokens: one softmax of the decoder state over the
   catalog, no code structure. What the history encoder reaches when the codes cost nothing. It runs without
   the output mixture (a mixture over N history positions would cost N x I per target with a flat vocabulary,
   where the trie keeps it at N x the children of a prefix); `single_softmax` (rung 5) is the same single
   softmax on the default Rec-IDs, so the two compare like with like.
2. `cf_codes`: the Graph RQ-VAE on the graph's spectral CF embedding alone (content weight 0).
3. `graph_rqvae`: the default tokenizer (CF embedding and modalities).
4. `rqvae`: content-only codes (RQ-VAE on the standardised modalities).
5. `single_softmax`: the default codes, decoded by one softmax of the decoder state instead of the mixture.
6. `evidence`: the co-occurrence evidence alone (`generator/cooccurrence.py`), no network, no codes: items
   ranked by p_u(i) with the starting smoothing kappa = 0.1. What the network adds on top of it is the gap
   between this rung and `graph_rqvae`.

Every trained rung is today's default generator: with the co-occurrence evidence, beta chosen on validation
after training as `train` does (`train.choose_network_weight`), and the transition tables where the mixture is
on. For each rung: validation and test Recall/NDCG@10/20 (beam search, the default width), the share of
validation targets whose token at each level is the model's most likely one given the true prefix (teacher
forcing, evidence included), the collision rate and the seconds spent. The gaps between rungs say whether the
encoder, the codes or the decoding loses.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mmgrec_core.config import resolve
from mmgrec_core.data.loaders import load_dataset
from mmgrec_core.data.sampling import UserItems, top_k_unseen
from mmgrec_core.evaluate import evaluate
from mmgrec_core.generator.cooccurrence import CoOccurrence
from mmgrec_core.generator.history import histories
from mmgrec_core.generator.recommender import MMGRec
from mmgrec_core.recid import RecIDTable
from mmgrec_core.runs import build_generator, make_run_tokenizer
from mmgrec_core.runtime import seed_everything
from mmgrec_core.train import choose_network_weight, fit_generator


@torch.no_grad()
def level_accuracy(model, data, table: RecIDTable, split: str = "valid", batch: int = 256) -> list[float]:
    """Per level d: share of the split's (user, item) pairs whose token d is the argmax of the mixture's
    p(c_d | true prefix, history)."""
    users, items = (torch.from_numpy(a) for a in data.pairs(split))
    seen = UserItems(data)
    trie, tokens, paths = table.trie, torch.from_numpy(table.tokens), table.trie.item_paths()
    cooccurrence = CoOccurrence(seen) if model.config.cooccurrence else None
    hits = np.zeros(trie.depth)
    for s in range(0, len(users), batch):
        u, i = users[s:s + batch], items[s:s + batch]
        h = histories(seen, u, model.config.max_history)
        memory, pad = model.encode(h)
        rows = torch.arange(len(u))
        target = tokens[i]
        hidden = model.decode(memory, pad, target[:, :-1], rows)
        log_w = model.log_prior(memory, pad)
        mass = cooccurrence.node_mass(h, u, trie) if cooccurrence else None
        for d in range(trie.depth):
            children, child, mask = trie.children(d, paths[i, d])
            evidence = model.evidence(d, mass, rows, child) if mass is not None else None
            logq = model.step_log_probs(hidden[:, d], d, model.components(memory, d), model.component_items(h),
                                        children, mask, evidence)                                  # [n, M, C]
            mixed = (log_w[..., None] + logq).logsumexp(1)                                           # [n, C]
            hits[d] += (children.gather(1, mixed.argmax(1, keepdim=True))[:, 0] == target[:, d]).sum().item()
            slot = (children == target[:, d, None]).float().argmax(1)
            log_w = log_w + logq.gather(2, slot[:, None, None].expand(-1, logq.shape[1], 1))[..., 0]
            log_w = log_w - log_w.logsumexp(1, keepdim=True)
    return (hits / max(len(users), 1)).tolist()


class EvidenceAlone:
    """The co-occurrence evidence as a recommender: items by p_u(i) over the inference histories."""

    def __init__(self, data, max_history: int, smooth: float = 0.1):
        self.seen = UserItems(data)
        self.cooccurrence, self.max_history, self.smooth = CoOccurrence(self.seen), max_history, smooth

    def recommend(self, users: torch.Tensor, k: int) -> torch.Tensor:
        s = self.cooccurrence.scores(histories(self.seen, users, self.max_history), users)       # [B, I]
        pop = self.cooccurrence.popularity
        p = s / s.sum(1, keepdim=True).clamp_min(1e-12) + self.smooth * pop / pop.sum()
        return top_k_unseen(p, users, self.seen, k)


def evidence_rung(dataset: str, data, seed: int) -> dict:
    base = resolve({"dataset": dataset, "seed": seed, "baselines": []})
    start = time.perf_counter()
    rec = EvidenceAlone(data, base.generator.max_history)
    row = {"rung": "evidence", "dataset": dataset, "collision_rate": 0.0, "tokenizer_s": 0.0,
           "generator_s": round(time.perf_counter() - start, 1)}
    for split in ("valid", "test"):
        row.update({f"{split}_{k}": round(v, 4) for k, v in evaluate(rec, data, split).items()})
    return row


def rung(name: str, dataset: str, data, seed: int) -> dict:
    if name == "evidence":
        return evidence_rung(dataset, data, seed)
    base = resolve({"dataset": dataset, "seed": seed, "baselines": []})
    start = time.perf_counter()
    graph = make_run_tokenizer(base)
    if name == "flat":                                   # Rec-ID = item id: one level of I tokens
        graph.represent(data)
        items = graph.representations()
        table = RecIDTable(np.arange(data.num_items)[:, None], data.popularity, data.item_table["name"].tolist(),
                           codebook_size=data.num_items)
    else:
        config = base
        if name == "cf_codes":
            config = dataclasses.replace(base, tokenizer=dataclasses.replace(
                base.tokenizer, options=dataclasses.replace(base.tokenizer.options, content_weight=0.0)))
        if name == "rqvae":
            config = resolve({"dataset": dataset, "seed": seed, "tokenizer": {"name": "rqvae"}, "baselines": []})
        tokenizer = make_run_tokenizer(config)
        table = tokenizer.fit(data, seed=seed)
        graph.represent(data)                            # every rung reads the same item vectors
        items = graph.representations()
    tok_seconds = time.perf_counter() - start
    seed_everything(seed)
    shape = dataclasses.replace(base, generator=dataclasses.replace(base.generator, mixture=False)) \
        if name in ("flat", "single_softmax") else base
    model = build_generator(shape, {"items": items}, table)
    start = time.perf_counter()
    fit_generator(model, data, table, base.training, base.decoding, seed)
    rec = MMGRec(model, table, UserItems(data), beam=base.decoding.beam)
    beta = {}
    if model.config.cooccurrence:                        # as `train` does (pipeline.evaluate_run)
        beta = choose_network_weight(rec, data)
    gen_seconds = time.perf_counter() - start
    row = {"rung": name, "dataset": dataset, "collision_rate": table.collision_rate,
           "tokenizer_s": round(tok_seconds, 1), "generator_s": round(gen_seconds, 1),
           "network_weight": beta.get("network_weight")}
    valid = beta.get("valid") or evaluate(rec, data, "valid")       # beta's trials searched it already
    for split, scores in (("valid", valid), ("test", evaluate(rec, data, "test"))):
        row.update({f"{split}_{k}": round(v, 4) for k, v in scores.items()})
    for d, acc in enumerate(level_accuracy(model, data, table), start=1):
        row[f"valid_acc_level{d}"] = round(acc, 4)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="demo")
    ap.add_argument("--rungs", default="evidence,graph_rqvae,flat,single_softmax,cf_codes,rqvae")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True, help="CSV; rows of rungs not run now are kept")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    data = load_dataset(args.dataset)
    names = args.rungs.split(",")
    kept = pd.read_csv(args.out) if args.out.exists() else pd.DataFrame(columns=["rung"])
    kept = kept[~kept["rung"].isin(names)]               # rungs run before and not asked for again stay
    rows = kept.to_dict("records")
    for name in names:
        rows.append(rung(name, args.dataset, data, args.seed))
        print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(args.out, index=False)
    table = pd.DataFrame(rows)
    print(table[["rung", "test_recall@20", "test_ndcg@10", "collision_rate"] +
                [c for c in table.columns if c.startswith("valid_acc")]].to_string(index=False))


if __name__ == "__main__":
    main()
