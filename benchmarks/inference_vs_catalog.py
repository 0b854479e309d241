"""Top-10 latency per user as the catalog grows: generative retrieval vs. embed-and-retrieve (MMGRec Fig. 5).

    python benchmarks/inference_vs_catalog.py
    python benchmarks/inference_vs_catalog.py --sizes 6000,25000 --repeats 2 --timed-users 256 --out /tmp/ivc.csv

For each catalog size a synthetic demo world (`demo:items=N,users=20000`) is generated and the default tokenizer
(Graph RQ-VAE, 3 levels x 256 codes, `--steps` + 50 training steps, balanced codes) is fitted on it; its Rec-ID
trie is what beam search decodes, and its collision rate and largest collision group are reported. Then
`--timed-users` random users, in batches of `--batch`, are timed for each method (one warm-up pass over the
batches, median of `--repeats` passes). More users than one batch are timed because MMGRec's cost follows the
users' history lengths (the encoder, the mixture's components): one batch of 256 is a noisy sample of them (the
1M world's first 256 had 17.7 items on average, its 20,000 users 15.8), and that noise is not the catalog's.

* MMGRec: `MMGRec.recommend` (constrained beam search, beam 20, KV cache, over the trie, seen items excluded) with
  an *untrained* generator (default `GeneratorConfig` without the co-occurrence evidence, whose per-user mass is
  a dense catalog-sized row; random 64-d item and user vectors): its cost is the same
  whatever the weights, so training is skipped. The network's work does not depend on the catalog; the trie's
  does, mildly (more valid children per beam until the 256-way levels fill up, indexing into per-depth arrays
  that grow with the catalog), and so do the transition tables' rows (I x vocabulary floats, 3 GB at 1M items).
* MMGRec, decoder without KV cache: the same search with the previous decoder, which re-ran the whole prefix at
  every level with the memory's keys copied per beam (`beam_cache.reference_decoder`): the speed-up in one run.
* MF exact: scoring of every item with random 64-d embeddings (`U[users] @ I.T`), then `top_k_unseen` (seen
  items masked, top-10): what the MF baseline does at inference, linear in the catalog.
* MF + HNSW: what a practitioner deploys instead, a faiss HNSW index (M 32, efConstruction 80, inner product) over
  the same item vectors, searched for the top 10 + (most seen items of a batch user) and filtered; efSearch is the
  smallest of 16..1024 whose recall of the exact unseen top-10 of the timed users is >= 95% (reported with the
  index build time). Random gaussian vectors are a hard case for a graph index; trained embeddings cluster more.

Writes one CSV row per (size, method) with ms per user (pass time / timed users), and a plotly figure next to it
(`.html`, log-x). The user count stays at 20000 at every size so that only the catalog changes; the 1M-item
world peaks at about 10 GiB of RAM. Tokenizer fitting and index building are timed and printed, not part of the
latency; they dominate the run time.
Device: `default_device()` (CUDA when present; timers read after a sync); the thread count is printed.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import plotly.express as px
import torch
from beam_cache import reference_decoder  # benchmarks/ is the folder of this script, so on sys.path

from mmgrec_core.data.loaders import load_dataset
from mmgrec_core.data.sampling import UserItems, top_k_unseen
from mmgrec_core.generator import GeneratorConfig, RecIDGenerator
from mmgrec_core.generator.recommender import MMGRec
from mmgrec_core.runtime import default_device
from mmgrec_core.tokenizers import make_tokenizer

K = 10
DIM = 64


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def median_seconds(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """One warm-up call, then the median wall time of `repeats` calls."""
    fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def hnsw_row(item_emb: torch.Tensor, batches: list[torch.Tensor], user_emb: torch.Tensor, seen: UserItems,
             exact: torch.Tensor, repeats: int) -> tuple[float, dict]:
    """Seconds per pass over the user `batches` of MF with a faiss HNSW index tuned to >= 95% recall of `exact`
    [users, K], and its setting."""
    import faiss

    faiss.omp_set_num_threads(torch.get_num_threads())
    items = item_emb.cpu().numpy()
    start = time.perf_counter()
    index = faiss.IndexHNSWFlat(items.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    index.add(items)
    build_s = time.perf_counter() - start
    searches = []                               # per batch: queries, depth, the batch's seen (row, item) keys
    for users in batches:
        rows, seen_items = (t.cpu() for t in seen.pairs_of(users))
        depth = K + int(torch.bincount(rows, minlength=len(users)).max())
        searches.append((user_emb[users].cpu().numpy(), depth, rows * seen.num_items + seen_items))

    def search() -> torch.Tensor:
        out = []
        for queries, depth, seen_keys in searches:
            _, found = index.search(queries, depth)
            found = torch.from_numpy(found)                                      # [B, depth], -1 if fewer
            keys = torch.arange(len(found))[:, None] * seen.num_items + found
            scores = torch.arange(depth, 0, -1, dtype=torch.float32).expand(len(found), -1).clone()
            scores[(found < 0) | torch.isin(keys, seen_keys)] = float("-inf")   # padding and seen items
            out.append(found.gather(1, scores.topk(K, dim=1).indices))
        return torch.cat(out)

    exact = exact.cpu()
    deepest = max(depth for _, depth, _ in searches)
    for ef in (16, 32, 64, 128, 256, 512, 1024):
        index.hnsw.efSearch = max(ef, deepest)
        got = search()
        recall = sum(len(set(a) & set(b)) for a, b in zip(got.tolist(), exact.tolist())) / exact.numel()
        if recall >= 0.95:
            break
    seconds = median_seconds(search, repeats, torch.device("cpu"))
    return seconds, {"ef_search": index.hnsw.efSearch, "recall_of_exact": recall, "index_build_s": build_s}


def measure(size: int, args: argparse.Namespace, device: torch.device) -> list[dict]:
    data = load_dataset(f"demo:items={size},users={args.users},seed={args.seed}")
    start = time.perf_counter()
    table = make_tokenizer("graph_rqvae", levels=3, codebook_size=256, steps=args.steps, polish_steps=50).fit(data)
    fit_s = time.perf_counter() - start
    group = table.max_p + 1
    print(f"{size:>9,} items: {data.num_users:,} users, {len(data.users):,} interactions; tokenizer fit "
          f"{fit_s:.1f} s; collision rate {table.collision_rate:.2%}, largest collision group {group}",
          flush=True)

    gen = torch.Generator().manual_seed(args.seed)
    users = torch.randperm(data.num_users, generator=gen)[: args.timed_users].to(device)
    batches = list(users.split(args.batch))
    seen = UserItems(data, device=device)
    lengths = seen.lengths(users).float()
    model = RecIDGenerator(GeneratorConfig(cooccurrence=False), torch.randn(size, DIM, generator=gen),
                           table.trie.vocab).to(device).eval()
    rec = MMGRec(model, table, seen, beam=args.beam, batch_size=args.batch)
    user_emb = torch.randn(data.num_users, DIM, generator=gen).to(device)
    item_emb = torch.randn(size, DIM, generator=gen).to(device)

    def each_batch(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], list[torch.Tensor]]:
        return lambda: [fn(batch) for batch in batches]

    search = each_batch(lambda batch: rec.recommend(batch, K))
    exact = each_batch(lambda batch: top_k_unseen(user_emb[batch] @ item_emb.T, batch, seen, K))
    timed = {"MMGRec (beam search)": (median_seconds(search, args.repeats, device), {})}
    with reference_decoder(model):
        timed["MMGRec, decoder without KV cache"] = (median_seconds(search, args.repeats, device), {})
    timed["MF exact (score all + top-k)"] = (median_seconds(exact, args.repeats, device), {})
    with torch.no_grad():
        timed["MF + HNSW (faiss)"] = hnsw_row(item_emb, batches, user_emb, seen, torch.cat(exact()), args.repeats)
    rows = []
    for method, (seconds, extra) in timed.items():
        rows.append({"items": size, "method": method, "ms_per_user": seconds / len(users) * 1e3,
                     "pass_s": seconds, "batch": args.batch, "timed_users": len(users),
                     "mean_history": lengths.mean().item(), "users": data.num_users,
                     "interactions": len(data.users), "largest_collision_group": group,
                     "collision_rate": table.collision_rate, "tokenizer_fit_s": fit_s, **extra})
        print(f"{'':>16}{method:<30} {rows[-1]['ms_per_user']:.3f} ms/user {extra}", flush=True)
    return rows


def main() -> None:
    device = default_device()
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="6000,25000,100000,250000,500000,1000000")
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=256, help="users per call")
    ap.add_argument("--timed-users", type=int, default=2048, help="users timed, in batches of --batch")
    ap.add_argument("--beam", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=300, help="tokenizer training steps (latency does not depend on them)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(f"benchmarks/results/inference_vs_catalog_{device.type}.csv"))
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    print(f"device: {device}; threads: {torch.get_num_threads()}; {args.timed_users} users in batches of "
          f"{args.batch}, beam {args.beam}, "
          f"top-{K}, median of {args.repeats}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in map(int, args.sizes.split(",")):
        rows += measure(size, args, device)
        frame = pd.DataFrame(rows)
        frame.to_csv(args.out, index=False)                    # after each size: a cut-short run keeps its rows
    fig = px.line(frame, x="items", y="ms_per_user", color="method", markers=True, log_x=True,
                  title=f"Top-{K} latency per user vs. catalog size ({device.type}, batch {args.batch})",
                  labels={"items": "catalog size (items)", "ms_per_user": "ms per user"})
    fig.write_html(args.out.with_suffix(".html"))
    table = frame.pivot(index="items", columns="method", values="ms_per_user")
    table = table.join(frame.groupby("items")[["mean_history", "largest_collision_group", "collision_rate",
                                                 "tokenizer_fit_s"]].first())
    table = table.join(frame.dropna(subset=["ef_search"]).set_index("items")[["ef_search", "recall_of_exact",
                                                                            "index_build_s"]])
    print(f"\nms per user (median of {args.repeats} passes over {args.timed_users} users in batches of {args.batch}):")
    print(table.round(4).to_string())
    print(f"wrote {args.out} and {args.out.with_suffix('.html')}")


if __name__ == "__main__":
    main()
