"""`InteractionData`: its views, and validation that names what is wrong and where (file, row, column)."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from mmgrec_core.data.dataset import TEST, TRAIN, VALID, DatasetError, DatasetWarning, InteractionData

NUM_USERS, NUM_ITEMS = 4, 5
# (user, item, split); every user has train data, every item is in train, every split is non-empty.
ROWS = [(0, 0, TRAIN), (0, 1, TRAIN), (0, 2, VALID), (0, 3, TEST),
        (1, 1, TRAIN), (1, 2, TRAIN), (1, 4, TEST),
        (2, 2, TRAIN), (2, 3, TRAIN), (2, 4, TRAIN), (2, 0, VALID),
        (3, 3, TRAIN), (3, 4, TRAIN), (3, 1, TRAIN)]
SOURCES = {"interactions": "toy/toy.inter", "features/image": "toy/image_feat.npy",
           "item_table": "toy/items.csv"}
FEAT = np.random.default_rng(0).random((NUM_ITEMS, 3))


def make(rows=ROWS, num_users=NUM_USERS, num_items=NUM_ITEMS, **kw) -> InteractionData:
    u, i, s = (np.array(c, dtype=np.int64) for c in zip(*rows)) if rows else (np.zeros(0, np.int64),) * 3
    args = dict(name="toy", num_users=num_users, num_items=num_items, users=u, items=i, split=s,
                features={"image": FEAT.copy()}, sources=SOURCES)
    args.update(kw)
    return InteractionData(**args)


def raises(match: str):
    """A DatasetError whose message matches the regex `match` (re.search)."""
    return pytest.raises(DatasetError, match=match)


def with_row(r: int, **change) -> list[tuple[int, int, int]]:
    rows = list(ROWS)
    u, i, s = rows[r]
    rows[r] = (change.get("user", u), change.get("item", i), change.get("split", s))
    return rows


# ---- a valid dataset and its views -------------------------------------------------------------------------


def test_valid_dataset_constructs_without_warnings_and_casts_dtypes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = make(users=np.array([r[0] for r in ROWS], np.int32))
    assert d.users.dtype == np.int64 and d.items.dtype == np.int64 and d.split.dtype == np.int8
    assert d.features["image"].dtype == np.float32 and d.features["image"].shape == (NUM_ITEMS, 3)
    assert list(d.item_table["name"]) == [f"item {i}" for i in range(NUM_ITEMS)]
    assert len(d.cold_items()) == 0 and len(d.users_without_train()) == 0
    assert "4 users, 5 items" in repr(d) and "image[3]" in repr(d)


def test_pairs_per_split():
    d = make()
    for code, name in ((TRAIN, "train"), (VALID, "valid"), (TEST, "test")):
        u, i = d.pairs(name)
        assert list(zip(u.tolist(), i.tolist())) == [(uu, ii) for uu, ii, s in ROWS if s == code]
    assert np.array_equal(d.pairs()[0], d.pairs("train")[0])


def test_matrix_is_binary_csr_of_one_split():
    d = make()
    m = d.matrix("train")
    assert m.shape == (NUM_USERS, NUM_ITEMS) and m.format == "csr" and m.has_sorted_indices
    dense = np.zeros((NUM_USERS, NUM_ITEMS), np.float32)
    for u, i, s in ROWS:
        if s == TRAIN:
            dense[u, i] = 1
    assert np.array_equal(m.toarray(), dense)
    assert m.nnz == 10
    t = d.matrix("test").toarray()
    assert t.sum() == 2 and t[0, 3] == 1 and t[1, 4] == 1


def test_popularity_counts_training_interactions_only():
    d = make()
    # item 0: train u0 (valid u2 not counted); 1: u0,u1,u3; 2: u1,u2 (valid u0 not counted); 3: u2,u3 (test u0
    # not counted); 4: u2,u3 (test u1 not counted)
    assert d.popularity.tolist() == [1, 3, 2, 2, 2]
    assert d.popularity.dtype == np.int64


def test_counts_and_users_with():
    d = make()
    assert d.counts() == {"users": 4, "items": 5, "train": 10, "valid": 2, "test": 2}
    assert d.users_with("train").tolist() == [0, 1, 2, 3]
    assert d.users_with("valid").tolist() == [0, 2]
    assert d.users_with("test").tolist() == [0, 1]


def test_user_without_interactions_and_item_without_interactions_are_not_flagged():
    # user 4 and item 5 never occur: not "without train", not cold, and no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = make(num_users=5, num_items=6, features={})
    assert d.users_without_train().tolist() == [] and d.cold_items().tolist() == []
    assert d.popularity.tolist() == [1, 3, 2, 2, 2, 0]
    assert d.matrix().shape == (5, 6)


# ---- errors: what and where --------------------------------------------------------------------------------


def test_negative_user_id_names_file_and_row():
    with raises(r"toy/toy\.inter: row 5: user id -1 is out of range \[0, 4\) \(1 such rows\)"):
        make(with_row(5, user=-1))


def test_item_id_at_or_beyond_num_items_names_file_and_row():
    rows = with_row(2, item=NUM_ITEMS)
    rows[7] = (2, 9, TRAIN)
    with raises(r"toy/toy\.inter: row 2: item id 5 is out of range \[0, 5\) \(2 such rows\)"):
        make(rows)


def test_duplicate_pair_names_both_rows():
    rows = ROWS + [(1, 2, TEST)]          # repeats row 5 (1, 2) with another split label
    with raises(r"toy/toy\.inter: rows 5 and 14 repeat the pair \(user 1, item 2\)"):
        make(rows)


@pytest.mark.parametrize("value, shown", [(np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")])
def test_non_finite_feature_names_file_row_and_column(value, shown):
    x = FEAT.copy()
    x[3, 2] = value
    x[4, 0] = np.nan
    with raises(rf"toy/image_feat\.npy: modality 'image' row 3 column 2 is {shown} \(2 non-finite values"):
        make(features={"image": x})


def test_feature_without_source_is_named_by_modality():
    x = FEAT.copy()
    x[1, 1] = np.nan
    with raises(r"features\['audio'\]: modality 'audio' row 1 column 1 is nan"):
        make(features={"image": FEAT, "audio": x})


def test_feature_row_count_must_match_items():
    with raises(r"toy/image_feat\.npy: modality 'image' has 4 rows but there are 5 items"):
        make(features={"image": FEAT[:4]})


def test_feature_must_be_2d():
    with raises(r"toy/image_feat\.npy: modality 'image' must be a 2-d \[items, dim\] matrix, "
                r"got shape \(5,\)"):
        make(features={"image": FEAT[:, 0]})


def test_empty_dataset():
    with raises(r"toy/toy\.inter: the dataset has no interactions"):
        make([])


@pytest.mark.parametrize("empty, code", [("train", TRAIN), ("valid", VALID), ("test", TEST)])
def test_each_empty_split_is_an_error(empty, code):
    other = TEST if code != TEST else VALID
    rows = [(u, i, other if s == code else s) for u, i, s in ROWS]
    with raises(rf"toy/toy\.inter: the {empty} split is empty"):
        make(rows)


def test_split_label_3_names_row():
    with raises(r"toy/toy\.inter: row 6: split label 3 is not 0/1/2 \(train/valid/test\) \(1 such rows\)"):
        make(with_row(6, split=3))


def test_split_label_that_wraps_in_int8_is_not_silently_train():
    # 256 would become 0 (train) in an int8 cast; it must be reported as it was given
    with raises(r"toy/toy\.inter: row 6: split label 256 is not 0/1/2"):
        make(with_row(6, split=256))


def test_column_lengths_must_agree():
    d = make()
    with raises(r"toy/toy\.inter: column items has 13 rows but users has 14"):
        make(items=d.items[:-1])
    with raises(r"toy/toy\.inter: column timestamp has 3 rows but users has 14"):
        make(timestamps=np.arange(3))


def test_item_table_without_name_column():
    table = pd.DataFrame({"title": [f"t{i}" for i in range(NUM_ITEMS)]})
    with raises(r"toy/items\.csv: needs a 'name' column and one row per item \(5\), got 5 rows and columns "
                r"\['title'\]"):
        make(item_table=table)


def test_item_table_with_wrong_length():
    table = pd.DataFrame({"name": ["a", "b", "c", "d"]})
    with raises(r"toy/items\.csv: .*one row per item \(5\), got 4 rows"):
        make(item_table=table)


def test_error_without_sources_names_the_dataset():
    with raises(r"^toy: row 0: user id 7 is out of range"):
        make(with_row(0, user=7), sources={})


# ---- warnings: unusual but usable --------------------------------------------------------------------------


def test_user_with_only_test_interactions_warns_with_count():
    rows = ROWS + [(4, 0, TEST), (4, 1, TEST)]
    with pytest.warns(DatasetWarning, match=r"toy/toy\.inter: 1 users have no training interactions") as rec:
        d = make(rows, num_users=5)
    assert len(rec) == 1
    assert d.users_without_train().tolist() == [4]
    assert d.users_with("test").tolist() == [0, 1, 4]


def test_items_only_in_valid_or_test_are_cold_and_warn():
    rows = ROWS + [(0, 5, VALID), (1, 6, TEST), (2, 6, VALID)]
    cold = r"toy/toy\.inter: 2 items appear only in valid/test \(cold items\)"
    with pytest.warns(DatasetWarning, match=cold):
        d = make(rows, num_items=8, features={})
    assert d.cold_items().tolist() == [5, 6]      # item 7 has no interactions at all: not cold
    assert d.popularity[5:].tolist() == [0, 0, 0]


def test_both_warnings_at_once():
    rows = ROWS + [(4, 5, TEST)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = make(rows, num_users=5, num_items=6, features={})
    messages = [str(w.message) for w in caught if issubclass(w.category, DatasetWarning)]
    assert len(messages) == 2
    assert any(re.search(r"\b1 users\b", m) for m in messages) and any("cold" in m for m in messages)
    assert d.users_without_train().tolist() == [4] and d.cold_items().tolist() == [5]
