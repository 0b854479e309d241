"""The generated demo world: size, taxonomy, determinism, popularity, and what each modality carries."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestCentroid

from mmgrec_core.data.dataset import TEST, TRAIN, DatasetError, DatasetWarning
from mmgrec_core.data.demo_world import TAXONOMY, DemoConfig, generate
from mmgrec_core.data.loaders import load_dataset

# A random split can leave a few items (1-3 at the default size) seen only in valid/test: that warning is
# expected here.
pytestmark = pytest.mark.filterwarnings("ignore:.*cold items:mmgrec_core.data.dataset.DatasetWarning")


@pytest.fixture(scope="module")
def demo():
    return generate()


def small(**kw):
    return generate(DemoConfig(**{"items": 300, "users": 200, **kw}))


def held_out_accuracy(clf, x: np.ndarray, y: np.ndarray) -> float:
    idx = np.random.default_rng(0).permutation(len(y))
    tr, te = idx[: len(y) * 7 // 10], idx[len(y) * 7 // 10:]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return float(clf.fit(x[tr], y[tr]).score(x[te], y[te]))


def test_default_size(demo):
    c = demo.counts()
    assert (demo.num_items, demo.num_users) == (2000, 3000)
    assert 40_000 <= len(demo.users) <= 80_000                  # 53,960 at seed 0
    assert c["train"] + c["valid"] + c["test"] == len(demo.users)
    assert 0.75 < c["train"] / len(demo.users) < 0.85
    assert demo.timestamps is not None and len(demo.timestamps) == len(demo.users)
    assert len(demo.cold_items()) <= 10                         # 3 at seed 0


def test_features_are_float32_item_matrices(demo):
    assert set(demo.features) == {"visual", "acoustic", "textual"}
    dims = {k: v.shape for k, v in demo.features.items()}
    assert dims == {"visual": (2000, 64), "acoustic": (2000, 32), "textual": (2000, 48)}
    for x in demo.features.values():
        assert x.dtype == np.float32 and x.ndim == 2 and np.isfinite(x).all()


def test_item_table_taxonomy(demo):
    t = demo.item_table
    assert {"name", "category", "subcategory"} <= set(t.columns) and len(t) == 2000
    assert t["name"].is_unique
    assert t["category"].nunique() == 12 and set(t["category"]) == set(TAXONOMY)
    assert t["subcategory"].nunique() == 96
    for cat, sub in zip(t["category"].astype(str), t["subcategory"].astype(str)):
        assert re.fullmatch(r"[A-Z][\w-]+ > [A-Z][\w -]+", sub), sub
        assert sub.split(" > ")[0] == cat and sub.split(" > ")[1] in TAXONOMY[cat]
    assert "Cooking > Baking" in set(t["subcategory"].cat.categories)
    # names read as "<style> <subcategory> #<id>"
    assert all(str(n).endswith(f"#{i}") for i, n in enumerate(t["name"]))
    assert str(t["name"][0]).split(" #")[0].endswith(str(t["subcategory"][0]).split(" > ")[1])


def test_same_seed_same_world_different_seed_different_world():
    a, b, c = small(seed=4), small(seed=4), small(seed=5)
    for k in ("users", "items", "split", "timestamps"):
        assert np.array_equal(getattr(a, k), getattr(b, k))
    for m in a.features:
        assert np.array_equal(a.features[m], b.features[m])
        assert not np.array_equal(a.features[m], c.features[m])
    assert a.item_table.equals(b.item_table)
    assert not (len(a.users) == len(c.users) and np.array_equal(a.items, c.items))
    assert not a.item_table["category"].equals(c.item_table["category"])


def test_every_user_has_training_data(demo):
    assert len(demo.users_without_train()) == 0
    assert np.array_equal(demo.users_with("train"), np.arange(demo.num_users))
    per_user = np.bincount(demo.users, minlength=demo.num_users)
    # 5 + geometric draws per user, minus repeated draws of an item: seeds 0-3 gave min 3-4, mean 18.0-18.3
    # and 3-7 users below 5
    assert per_user.min() >= 2 and (per_user < 5).mean() < 0.01 and 15 < per_user.mean() < 22


def test_no_duplicate_pairs_and_ids_in_range(demo):
    key = demo.users * demo.num_items + demo.items
    assert len(np.unique(key)) == len(key)


def test_popularity_is_heavy_tailed(demo):
    counts = np.sort(np.bincount(demo.items, minlength=demo.num_items))[::-1]
    top1 = counts[: demo.num_items // 100].sum() / counts.sum()      # 0.117 at seed 0
    top10 = counts[: demo.num_items // 10].sum() / counts.sum()      # 0.429 at seed 0
    assert top1 > 0.06 and top10 > 0.3
    assert counts[0] > 10 * np.median(counts)
    train_pop = np.sort(demo.popularity)[::-1]
    assert train_pop[:20].sum() / train_pop.sum() > 0.06


def test_textual_predicts_category_far_better_than_acoustic(demo):
    # nearest centroid on a 70/30 item split; seeds 0-3 gave textual 0.995-1.000, acoustic 0.53-0.61
    cat = demo.item_table["category"].cat.codes.to_numpy()
    acc = {m: held_out_accuracy(NearestCentroid(), demo.features[m], cat) for m in ("textual", "acoustic")}
    assert acc["textual"] > 0.9
    assert acc["textual"] > acc["acoustic"] + 0.25, acc
    assert acc["acoustic"] > 2 / 12, acc                  # faint but real: chance is 1/12


def test_visual_predicts_subcategory_better_than_textual(demo):
    # logistic regression (96 classes) on a 70/30 item split; seeds 0-3 gave visual 0.92-0.96, textual
    # 0.73-0.80. (Nearest centroid does not separate them: ~0.83 vs ~0.81, since style clutters visual.)
    sub = demo.item_table["subcategory"].cat.codes.to_numpy()
    acc = {m: held_out_accuracy(LogisticRegression(max_iter=100, tol=1e-2), demo.features[m], sub)
           for m in ("visual", "textual")}
    assert acc["visual"] > 0.85
    assert acc["visual"] > acc["textual"] + 0.08, acc


def test_options_via_spec():
    d = load_dataset("demo:items=500,users=300,seed=3")
    assert (d.num_items, d.num_users) == (500, 300)
    assert d.name == "demo:items=500,users=300,seed=3"
    assert all(v.shape[0] == 500 for v in d.features.values())
    same = generate(DemoConfig(items=500, users=300, seed=3))
    assert np.array_equal(d.items, same.items) and np.array_equal(d.split, same.split)


def test_split_last_via_spec_is_leave_last_out():
    d = load_dataset("demo:items=300,users=200,split=last")
    ts = d.timestamps
    per_user = np.bincount(d.users, minlength=d.num_users)
    assert np.array_equal(np.bincount(d.users[d.split == TEST], minlength=d.num_users), (per_user >= 2) * 1)
    for u in range(0, d.num_users, 17):
        rows = np.flatnonzero(d.users == u)
        assert d.split[rows[np.argmax(ts[rows])]] == TEST
        assert (ts[rows[d.split[rows] == TRAIN]] < ts[rows[d.split[rows] == TEST]].max()).all()
    assert not np.array_equal(d.split, small().split)


def test_bad_options_are_dataset_errors():
    with pytest.raises(DatasetError, match=r"split='lats'"):
        load_dataset("demo:items=300,users=200,split=lats")
    for spec, message in (("demo:items=1", "items=1 must be an integer in [2, "),
                          ("demo:seed=-1", "seed=-1 must be an integer"), ("demo:clusters=0", "clusters=0"),
                          ("demo:zipf=nan", "zipf=nan must be a number"), ("demo:items=1e8", "is not a int"),
                          ("demo:items=100000000", "items=100000000 must be"),
                          ("demo:modalities=smell", "modalities='smell'"), ("demo:preset=huge", "preset='huge'")):
        with pytest.raises(DatasetError, match=re.escape(message)):
            load_dataset(spec)


def test_the_sparse_preset_behaves_like_short_video_data():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        d = load_dataset("demo:preset=sparse")
    assert set(d.features) == {"visual", "acoustic"} and (d.num_items, d.num_users) == (8000, 10000)
    train_per_user = np.bincount(d.pairs("train")[0], minlength=d.num_users)
    assert 2 <= np.median(train_per_user) <= 3
    test_items = d.pairs("test")[1]
    assert 0.05 <= (d.popularity[test_items] == 0).mean() <= 0.10          # cold test items
    assert load_dataset("demo:preset=sparse,items=3000").num_items == 3000  # options still apply


def test_tiny_worlds_validate_or_fail_with_a_dataset_error():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = generate(DemoConfig(items=10, users=5))
    assert (d.num_items, d.num_users) == (10, 5) and min(d.counts().values()) >= 1
    assert all(issubclass(w.category, DatasetWarning) for w in caught)
    # 2 items give each user 2 interactions, all train under 80/10/10: no valid split, said plainly
    with pytest.raises(DatasetError, match=r"demo:items=2,users=1,seed=0: the valid split is empty"):
        generate(DemoConfig(items=2, users=1))
