import dataclasses

import numpy as np
import pytest
import torch

from mmgrec_core.baselines import (
    EASE,
    LightGCN,
    Popularity,
    bipartite_norm_adj,
    degree_sensitive_probabilities,
    knn_item_graph,
    make_baseline,
    prune_edges,
    train_baseline,
)
from mmgrec_core.data.loaders import load_dataset

pytestmark = pytest.mark.filterwarnings("ignore::mmgrec_core.data.dataset.DatasetWarning")
FAST = dict(max_epochs=30, eval_every=5, patience=3, lr=1e-2)


@pytest.fixture(scope="module")
def data():
    return load_dataset("demo:items=300,users=400,seed=1")


def _assert_valid_lists(model, data, k=20):
    users = torch.arange(data.num_users)
    recs = model.recommend(users, k).numpy()
    assert recs.shape == (data.num_users, k)
    train = data.matrix("train")
    for u in range(0, data.num_users, 37):
        assert len(set(recs[u])) == k
        assert not set(recs[u]) & set(train[u].indices)


@pytest.mark.parametrize("name", ["popularity", "mf", "lightgcn", "ease", "freedom"])
def test_every_baseline_returns_unseen_distinct_items(data, name):
    overrides = {} if name in ("popularity", "ease") else FAST
    model = make_baseline(name, **overrides).fit(data)
    _assert_valid_lists(model, data)


def test_popularity_ranks_by_training_counts(data):
    model = Popularity().fit(data)
    recs = model.recommend(torch.tensor([0]), 5)[0].numpy()
    pop = data.popularity.astype(float)
    pop[data.matrix("train")[0].indices] = -1
    assert np.array_equal(np.sort(pop[recs])[::-1], np.sort(pop)[::-1][:5])


def test_lightgcn_propagation_matches_dense_formula(data):
    model = LightGCN(make_baseline("lightgcn", layers=2).config)
    model._build(data)
    x = data.matrix("train").toarray()
    n_u = data.num_users
    adj = np.zeros((n_u + data.num_items,) * 2)
    adj[:n_u, n_u:], adj[n_u:, :n_u] = x, x.T
    deg = adj.sum(1)
    inv = np.zeros_like(deg)
    inv[deg > 0] = deg[deg > 0] ** -0.5
    norm = inv[:, None] * adj * inv[None, :]
    e0 = model.embedding.weight.detach().double().numpy()
    expected = (e0 + norm @ e0 + norm @ norm @ e0) / 3
    assert np.allclose(model.propagate().detach().numpy(), expected, atol=1e-5)


def test_ease_closed_form_and_lambda_choice(data):
    model = EASE().fit(data)
    x = data.matrix("train").toarray().astype(np.float64)
    p = np.linalg.inv(x.T @ x + model.lam * np.eye(data.num_items))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0)
    assert np.allclose(model.weights.numpy(), b, atol=1e-4)
    assert model.lam in model.config.lambdas


def test_ease_refuses_a_catalog_too_large():
    with pytest.raises(ValueError, match="dense"):
        make_baseline("ease", max_items=10).fit(load_dataset("demo:items=50,users=40"))


def test_trained_models_beat_popularity_and_runs_repeat(data):
    pop = train_baseline("popularity", data)[1]["valid"]["recall@20"]
    ease = train_baseline("ease", data)[1]["valid"]["recall@20"]
    lgcn = train_baseline("lightgcn", data, **FAST)[1]
    assert ease > pop and lgcn["valid"]["recall@20"] > pop
    assert train_baseline("lightgcn", data, **FAST)[1]["test"] == lgcn["test"]


def test_tuning_keeps_the_setting_with_the_best_validation_recall(data, monkeypatch):
    import mmgrec_core.baselines as b
    monkeypatch.setitem(b.GRIDS, "mf", [{"reg": 1e-4}, {"reg": 3.0}])      # a sane L2 and one that kills MF
    model, entry = train_baseline("mf", data, tune=True, **FAST)
    scores = [t["valid_recall@20"] for t in entry["tuning"]]
    assert [t["reg"] for t in entry["tuning"]] == [1e-4, 3.0] and scores[0] > scores[1]
    assert model.config.reg == 1e-4 and entry["tune_seconds"] >= entry["train_seconds"]
    assert round(entry["valid"]["recall@20"], 4) == scores[0]
    assert [t["lambda"] for t in train_baseline("ease", data)[1]["tuning"]] == list(b.EASEConfig().lambdas)


def test_freedom_fits_on_pruned_graphs_ranks_on_the_full_one_and_is_evaluated(data):
    model = make_baseline("freedom", keep=0.5, **FAST).fit(data)
    edges = len(data.pairs("train")[0])
    assert model.adj.values().numel() == 2 * edges                    # both directions of every edge
    assert model.train_adj.values().numel() == 2 * int(edges * 0.5)   # the last epoch's pruned graph
    users = torch.arange(0, data.num_users, 7)
    h = model.propagate(model.adj)
    scores = h[users] @ h[data.num_users:].T
    expected = model.seen.mask_(scores, users).topk(10).indices
    assert torch.equal(model.recommend(users, 10), expected)
    entry = train_baseline("freedom", data, **FAST)[1]
    pop = train_baseline("popularity", data)[1]
    assert entry["valid"]["recall@20"] > pop["valid"]["recall@20"] and "recall@20" in entry["test"]


def _circle(degrees):
    a = np.radians(degrees)
    return np.stack([np.cos(a), np.sin(a)], 1).astype(np.float32)


def test_knn_item_graph_by_hand():
    # k = 2: each item keeps itself and its nearest item by angle; lengths must not matter (cosine, not dot)
    a, b = _circle([0, 10, 30, 90, 95]), _circle([0, 60, 5, 62, 100])
    a[2] *= 10
    b[0] *= 0.1
    neighbours = {"a": [(0, 1), (1, 0), (2, 1), (3, 4), (4, 3)], "b": [(0, 2), (1, 3), (2, 0), (3, 1), (4, 3)]}
    expected = 0.5 * np.eye(5)           # 1/k per edge, 1/2 per modality: self loops 2 x 1/4, others 1/4 each
    for edges in neighbours.values():
        for r, c in edges:
            expected[r, c] += 0.25
    assert expected[4, 3] == 0.5         # both modalities agree on this one
    for block_bytes in (2**20, 2 * 5 * 4):       # one block, then blocks of two rows
        graph = knn_item_graph({"a": a, "b": b}, k=2, block_bytes=block_bytes)
        assert graph.layout == torch.sparse_csr
        assert np.allclose(graph.to_dense().numpy(), expected)


def test_degree_sensitive_pruning_by_hand():
    users, items = np.array([0, 0, 0, 1]), np.array([0, 1, 2, 0])
    p = degree_sensitive_probabilities(users, items, num_users=2, num_items=3)
    w = 1 / np.sqrt([3 * 2, 3 * 1, 3 * 1, 1 * 2])               # 1 / sqrt(d_u d_i)
    assert np.allclose(p, w / w.sum())
    kept = prune_edges(p, 0.5, np.random.default_rng(7))
    assert len(kept) == 2 == len(set(kept.tolist()))
    assert np.array_equal(kept, prune_edges(p, 0.5, np.random.default_rng(7)))
    # without replacement as successive draws: P(e kept among 2) = p_e + sum_{f != e} p_f p_e / (1 - p_f)
    draws = np.stack([prune_edges(p, 0.5, np.random.default_rng(s)) for s in range(4000)])
    inclusion = p + np.array([sum(p[f] * p[e] / (1 - p[f]) for f in range(4) if f != e) for e in range(4)])
    assert np.allclose(np.bincount(draws.ravel(), minlength=4) / 4000, inclusion, atol=0.03)
    # the kept graph is renormalised by its own degrees: D^-1/2 A D^-1/2
    adj = bipartite_norm_adj(users[kept], items[kept], 2, 3).to_dense().numpy()
    dense = np.zeros((5, 5))
    dense[users[kept], 2 + items[kept]] = dense[2 + items[kept], users[kept]] = 1
    inv = np.where(dense.sum(1) > 0, dense.sum(1), 1) ** -0.5
    assert np.allclose(adj, inv[:, None] * dense * inv[None, :])


def test_freedom_refuses_data_without_features():
    data = load_dataset("demo:items=50,users=40")
    with pytest.raises(ValueError, match="no item features; FREEDOM needs at least one modality"):
        make_baseline("freedom", **FAST).fit(dataclasses.replace(data, features={}))


def test_sparse_matmul_backward_multiplies_by_the_transpose():
    """The hand-written backward of the propagation (adj^T given once) gives autograd's gradient of dense adj @ x."""
    from mmgrec_core.baselines import _transposed, sparse_matmul

    gen = torch.Generator().manual_seed(0)
    dense = torch.rand(5, 4, generator=gen) * (torch.rand(5, 4, generator=gen) > 0.5)       # not symmetric
    adj = dense.to_sparse_csr()
    x = torch.randn(4, 3, generator=gen, requires_grad=True)
    grad = torch.randn(5, 3, generator=gen)
    sparse_matmul(adj, x, _transposed(adj)).backward(grad)
    assert torch.allclose(x.grad, dense.T @ grad)
    y = x.detach().clone().requires_grad_()
    assert torch.allclose(sparse_matmul(adj, y, _transposed(adj)), dense @ y)
