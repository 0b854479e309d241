import numpy as np
import pytest
import torch

from mmgrec_core.baselines import EASE, LightGCN, Popularity, make_baseline, train_baseline
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


@pytest.mark.parametrize("name", ["popularity", "mf", "lightgcn", "ease"])
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
