"""mmgrec+dense: the fused score by hand, the dense scores against full scoring, and the row in a real run."""

import numpy as np
import pytest
import torch

from mmgrec_core.baselines import EASE, EASEConfig, make_baseline
from mmgrec_core.data.demo_world import DemoConfig, generate
from mmgrec_core.files import read_json
from mmgrec_core.generator.rerank import WEIGHTS, Candidates, DenseRerank, standardised
from mmgrec_core.pipeline import train_run
from mmgrec_core.runs import load_run

pytestmark = pytest.mark.filterwarnings("ignore::mmgrec_core.data.dataset.DatasetWarning")

TINY = {"dataset": "demo:items=120,users=150,seed=5", "seed": 3,
        "tokenizer": {"codebook_size": 8, "steps": 100, "polish_steps": 30},
        "generator": {"dim": 16}, "training": {"epochs": 2, "eval_every": 1, "patience": 10, "valid_users": 50},
        "decoding": {"beam": 20, "rerank": 30}, "baselines": ["popularity", "ease"]}


def test_standardised_uses_only_the_valid_entries():
    x = torch.tensor([[1.0, 3.0, 100.0], [2.0, 2.0, 0.0]])
    valid = torch.tensor([[True, True, False], [True, True, True]])
    z = standardised(x, valid)
    assert torch.allclose(z[0, :2], torch.tensor([-1.0, 1.0]))        # mean 2, std 1 over the two valid ones
    std = np.std([2.0, 2.0, 0.0])
    assert torch.allclose(z[1], torch.tensor([2 / 3, 2 / 3, -4 / 3]) / std)


def test_the_weight_moves_the_order_from_the_generator_to_the_dense_model():
    items = torch.tensor([[7, 4, 9, -1]])
    log_p = torch.tensor([[-1.0, -2.0, -3.0, float("-inf")]])
    dense = torch.tensor([[0.0, 5.0, 10.0, 99.0]])
    c = Candidates(items, log_p, dense)
    assert c.top(0.0, 5).tolist() == [[7, 4, 9, -1, -1]]
    assert c.top(1.0, 3).tolist() == [[9, 4, 7]]
    # z(log p) = (1.22, 0, -1.22), z(dense) = (-1.22, 0, 1.22): at w = 0.4 the generator still leads
    assert c.top(0.4, 3).tolist() == [[7, 4, 9]]
    assert c.top(0.6, 3).tolist() == [[9, 4, 7]]


def test_dense_scores_equal_full_scoring_at_the_candidates():
    data = generate(DemoConfig(items=80, users=60, seed=2))
    users = torch.arange(10)
    items = torch.randint(0, 80, (10, 7))
    ease = EASE(EASEConfig(lambdas=(50.0,))).fit(data)
    full = torch.from_numpy(data.matrix("train")[users.numpy()].toarray()) @ ease.weights
    assert torch.allclose(ease.score(users, items), full.gather(1, items), atol=1e-5)
    mf = make_baseline("mf", max_epochs=2).fit(data)
    h = mf.propagate().detach()
    full = h[users] @ h[mf.num_users:].T
    assert torch.allclose(mf.score(users, items), full.gather(1, items), atol=1e-5)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("dense_run")
    train_run(out, TINY)
    return out


def test_the_run_has_a_dense_row_tuned_on_validation(run_dir):
    row = read_json(run_dir / "metrics.json")["models"]["mmgrec+dense"]
    assert row["dense"] == "ease" and row["candidates"] == 30 and row["weight"] in WEIGHTS
    assert [t["weight"] for t in row["tuning"]] == list(WEIGHTS)
    assert row["valid"]["ndcg@10"] == pytest.approx(max(t["valid_ndcg@10"] for t in row["tuning"]), abs=1e-4)
    assert row["train_seconds"] >= read_json(run_dir / "metrics.json")["models"]["mmgrec"]["train_seconds"]


def test_dense_rerank_returns_only_the_beams_unseen_items(run_dir):
    run = load_run(run_dir)
    ease = EASE(EASEConfig(lambdas=(50.0,))).fit(run.data)
    rerank = DenseRerank(run.recommender, ease, weight=1.0, width=30)
    users = torch.arange(run.data.num_users)
    recs = rerank.recommend(users, 20)
    beam = run.recommender.search(users, 30).items
    train = run.data.matrix("train").toarray().astype(bool)
    for u in range(len(users)):
        got = recs[u][recs[u] >= 0]
        assert set(got.tolist()) <= set(beam[u].tolist())             # only reorders what the beam found
        assert len(set(got.tolist())) == len(got) and not train[u, got.numpy()].any()


def test_a_kill_before_the_dense_row_resumes_to_the_same_metrics(run_dir, tmp_path, monkeypatch):
    """Killed while re-ranking: the resumed run no longer holds EASE in memory, refits it at its kept setting
    and writes the same rows."""
    import mmgrec_core.pipeline as pipeline

    class Killed(Exception):
        pass

    def killed(*args, **kwargs):
        raise Killed

    with monkeypatch.context() as m:
        m.setattr(pipeline.DenseRerank, "tune", killed)
        with pytest.raises(Killed):
            train_run(tmp_path, TINY)
    assert "mmgrec" not in read_json(tmp_path / "metrics.json")["models"]   # not finished until both are written
    train_run(tmp_path, resume=True)
    a, b = read_json(tmp_path / "metrics.json"), read_json(run_dir / "metrics.json")
    for name in ("mmgrec", "mmgrec+dense"):
        assert a["models"][name]["test"] == b["models"][name]["test"], name
