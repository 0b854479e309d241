"""Round trips and error messages of the MMRec and MMGCN file-format loaders."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.lib.format import write_array_header_1_0

from mmgrec_core.data.dataset import TEST, TRAIN, VALID, DatasetError, DatasetWarning
from mmgrec_core.data.formats import _load_npy, load_mmgcn, load_mmrec
from mmgrec_core.data.split import random_split

# Any DatasetWarning that a test does not ask for is a failure: the fixtures are meant to be clean.
pytestmark = pytest.mark.filterwarnings("error::mmgrec_core.data.dataset.DatasetWarning")

NUM_USERS, NUM_ITEMS = 5, 6
# (user, item, split); every user has train data, every item is in train, every split is non-empty.
ROWS = [(0, 0, TRAIN), (0, 1, TRAIN), (0, 5, TRAIN), (0, 2, VALID),
        (1, 1, TRAIN), (1, 2, TRAIN), (1, 3, VALID),
        (2, 2, TRAIN), (2, 3, TRAIN), (2, 0, TEST),
        (3, 3, TRAIN), (3, 4, TRAIN), (3, 5, TEST),
        (4, 4, TRAIN), (4, 5, TRAIN), (4, 0, TEST)]
SPLIT_NAMES = {"train": TRAIN, "valid": VALID, "test": TEST}
RNG = np.random.default_rng(0)
FEAT_A = RNG.random((NUM_ITEMS, 4), dtype=np.float32)
FEAT_B = RNG.random((NUM_ITEMS, 3), dtype=np.float32)


def pair_set(users, items) -> set[tuple[int, int]]:
    return set(zip(np.asarray(users).tolist(), np.asarray(items).tolist()))


def expected_pairs(code: int, rows=ROWS) -> set[tuple[int, int]]:
    return {(u, i) for u, i, s in rows if s == code}


def object_rows(rows: list[list[int]]) -> np.ndarray:
    """A 1-d object array of lists, as older numpy made from np.save(list of ragged lists)."""
    out = np.empty(len(rows), dtype=object)
    for k, r in enumerate(rows):
        out[k] = list(r)
    return out


def write_mmrec(d: Path, rows=ROWS, features: bool = True) -> Path:
    d.mkdir(exist_ok=True)
    lines = ["userID\titemID\trating\ttimestamp\tx_label"]
    lines += [f"{u}\t{i}\t5\t{1000 + k}\t{s}" for k, (u, i, s) in enumerate(rows)]
    (d / "toy.inter").write_text("\n".join(lines) + "\n")
    if features:
        np.save(d / "image_feat.npy", FEAT_A)
        np.save(d / "text_feat.npy", FEAT_B)
    return d


def write_mmgcn(d: Path, features: bool = True) -> Path:
    d.mkdir(exist_ok=True)
    train = np.array([(u, i + NUM_USERS) for u, i, s in ROWS if s == TRAIN], dtype=np.int64)
    np.save(d / "train.npy", train)
    for code, name in ((VALID, "val_full.npy"), (TEST, "test_full.npy")):
        rows = [[u] + [i + NUM_USERS for uu, i, s in ROWS if uu == u and s == code] for u in range(NUM_USERS)]
        np.save(d / name, np.array(rows, dtype=object))
    if features:
        np.save(d / "v_feat.npy", FEAT_A)
        torch.save(torch.from_numpy(FEAT_B), d / "t_feat.pt")
    return d


# ---- round trips -----------------------------------------------------------------------------------------


def test_mmrec_round_trip(tmp_path):
    d = load_mmrec(write_mmrec(tmp_path / "mm"))
    assert (d.num_users, d.num_items) == (NUM_USERS, NUM_ITEMS)
    for name, code in SPLIT_NAMES.items():
        assert pair_set(*d.pairs(name)) == expected_pairs(code)
    assert sorted(d.features) == ["image", "text"]
    np.testing.assert_array_equal(d.features["image"], FEAT_A)
    np.testing.assert_array_equal(d.features["text"], FEAT_B)
    np.testing.assert_array_equal(d.timestamps, 1000 + np.arange(len(ROWS)))
    assert d.name == f"mmrec:{tmp_path / 'mm'}"
    assert d.sources == {"interactions": str(tmp_path / "mm" / "toy.inter"),
                         "features/image": str(tmp_path / "mm" / "image_feat.npy"),
                         "features/text": str(tmp_path / "mm" / "text_feat.npy")}


def test_mmrec_without_features_counts_items_from_ids(tmp_path):
    d = load_mmrec(write_mmrec(tmp_path, features=False))
    assert (d.num_users, d.num_items, d.features) == (NUM_USERS, NUM_ITEMS, {})


def test_mmgcn_round_trip(tmp_path):
    d = load_mmgcn(write_mmgcn(tmp_path / "g"))
    assert (d.num_users, d.num_items) == (NUM_USERS, NUM_ITEMS)
    for name, code in SPLIT_NAMES.items():
        assert pair_set(*d.pairs(name)) == expected_pairs(code)
    assert sorted(d.features) == ["textual", "visual"]
    np.testing.assert_array_equal(d.features["visual"], FEAT_A)
    np.testing.assert_array_equal(d.features["textual"], FEAT_B)
    assert d.sources["interactions"] == str(tmp_path / "g" / "train.npy")


def test_mmgcn_ignores_user_item_dict_next_to_train_and_maps_aliases(tmp_path):
    d = write_mmgcn(tmp_path, features=False)
    np.save(d / "user_item_dict.npy", {0: [NUM_USERS]})
    np.save(d / "FeatureVideo_normal.npy", FEAT_A)
    np.save(d / "FeatureAudio_avg_normal.npy", FEAT_B)
    np.save(d / "FeatureText_stl_normal.npy", FEAT_B)
    np.save(d / "extra.npy", FEAT_A)
    data = load_mmgcn(d)
    assert sorted(data.features) == ["acoustic", "extra", "textual", "visual"]
    assert pair_set(*data.pairs("valid")) == expected_pairs(VALID)


def test_mmgcn_val_test_rows_of_equal_length_as_int_matrix(tmp_path):
    d = write_mmgcn(tmp_path, features=False)
    np.save(d / "val_full.npy", np.array([[0, 2 + NUM_USERS], [1, 3 + NUM_USERS]]))
    data = load_mmgcn(d)
    assert pair_set(*data.pairs("valid")) == {(0, 2), (1, 3)}
    assert data.num_items == NUM_ITEMS


def test_mmgcn_user_item_dict_is_split_with_random_split(tmp_path):
    num_users = 6
    # user 0: 10 items -> 8/1/1; users 1..5: 2 items each (always train) covering every item: nothing is cold.
    # An np.int64 key and set values exercise the numpy-scalar and builtins.set paths of the safe unpickler.
    table = {np.int64(0): list(range(10)), **{u: {2 * (u - 1), 2 * (u - 1) + 1} for u in range(1, 6)}}
    np.save(tmp_path / "user_item_dict.npy", {k: [i + num_users for i in v] for k, v in table.items()})
    d = load_mmgcn(tmp_path, seed=3)
    assert (d.num_users, d.num_items) == (num_users, 10)
    assert pair_set(d.users, d.items) == {(int(u), i) for u, v in table.items() for i in v}
    np.testing.assert_array_equal(d.split, random_split(d.users, 3))
    assert np.bincount(d.split[d.users == 0], minlength=3).tolist() == [8, 1, 1]
    assert (d.split[d.users != 0] == TRAIN).all()


def test_safe_npy_reads_ragged_object_arrays_and_dicts(tmp_path):
    rows = [[0, 5, 6], [1, 7], [2]]
    np.save(tmp_path / "rows.npy", np.array(rows, dtype=object))
    assert [list(r) for r in _load_npy(tmp_path / "rows.npy")] == rows
    np.save(tmp_path / "dict.npy", {0: [5, 6], np.int64(1): [np.int64(7)]})
    assert _load_npy(tmp_path / "dict.npy").item() == {0: [5, 6], 1: [7]}
    np.save(tmp_path / "plain.npy", np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(_load_npy(tmp_path / "plain.npy"), np.arange(6).reshape(2, 3))


def test_safe_npy_reads_legacy_protocol_2_pickles(tmp_path):
    """numpy < 1.17 pickled object arrays with protocol 2 (bytes via _codecs.encode) from `numpy.core`."""
    for name, obj, shape in (("rows", object_rows([[0, 5, 6], [1, 7]]), (2,)),
                             ("dict", np.array({np.int64(0): {5, 6}, 1: [7]}, dtype=object), ())):
        raw = pickle.dumps(obj, protocol=2)
        assert b"numpy._core.multiarray\n" in raw and b"_codecs\nencode" in raw
        raw = raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")  # GLOBAL: newline-ended
        with open(tmp_path / f"{name}.npy", "wb") as f:
            write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": shape})
            f.write(raw)
    assert [list(r) for r in _load_npy(tmp_path / "rows.npy")] == [[0, 5, 6], [1, 7]]
    assert _load_npy(tmp_path / "dict.npy").item() == {0: {5, 6}, 1: [7]}


def test_user_without_training_data_warns(tmp_path):
    rows = [r for r in ROWS if r[0] != 0] + [(0, 2, VALID), (1, 0, TRAIN)]  # item 0 stays warm
    with pytest.warns(DatasetWarning, match="no training interactions"):
        load_mmrec(write_mmrec(tmp_path, rows=rows))


# ---- malicious pickles -------------------------------------------------------------------------------------


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_user_item_dict_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    d = tmp_path / "g"
    d.mkdir()
    np.save(d / "user_item_dict.npy", np.array([_Evil(marker)], dtype=object))
    with pytest.raises(DatasetError, match=r"refusing to unpickle \w+\.system from .*user_item_dict\.npy"):
        load_mmgcn(d)
    assert not marker.exists()


def test_malicious_feature_file_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    d = write_mmrec(tmp_path / "mm")
    np.save(d / "image_feat.npy", np.array([_Evil(marker)], dtype=object))
    with pytest.raises(DatasetError, match=r"refusing to unpickle .*image_feat\.npy"):
        load_mmrec(d)
    assert not marker.exists()


# ---- bad inputs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loader", [load_mmrec, load_mmgcn])
def test_missing_directory(tmp_path, loader):
    with pytest.raises(DatasetError, match=r"nope.*not found"):
        loader(tmp_path / "nope")


def test_mmrec_no_or_two_inter_files(tmp_path):
    with pytest.raises(DatasetError, match=r"exactly one \*\.inter file, found 0"):
        load_mmrec(tmp_path)
    write_mmrec(tmp_path)
    (tmp_path / "other.inter").write_text("userID\titemID\tx_label\n0\t0\t0\n")
    with pytest.raises(DatasetError, match=r"found 2 \(other\.inter, toy\.inter\)"):
        load_mmrec(tmp_path)


def test_mmrec_missing_header_columns(tmp_path):
    (tmp_path / "a.inter").write_text("userID\trating\n0\t1\n")
    with pytest.raises(DatasetError, match=r"a\.inter: header lacks column\(s\) itemID, x_label"):
        load_mmrec(tmp_path)


def test_mmrec_non_numeric_user(tmp_path):
    (tmp_path / "a.inter").write_text("userID\titemID\tx_label\n0\t0\t0\nbob\t1\t0\n")
    with pytest.raises(DatasetError, match=r"a\.inter: row 1 \(line 3\) column userID: 'bob' is not an int"):
        load_mmrec(tmp_path)


@pytest.mark.parametrize("features", [True, False])
def test_mmrec_one_huge_id_is_refused_before_anything_is_allocated(tmp_path, features):
    write_mmrec(tmp_path, ROWS + [(10**9, 0, TRAIN)], features=features)
    with pytest.raises(DatasetError, match=r"toy\.inter: row \d+ \(line \d+\) column userID: id 1000000000"):
        load_mmrec(tmp_path)


def test_mmrec_ragged_rows_are_a_parse_error(tmp_path):
    (tmp_path / "a.inter").write_text("userID\titemID\tx_label\n0\t0\t0\n1\t1\t0\t7\t8\n")
    with pytest.raises(DatasetError, match=r"a\.inter: cannot read.*line 3"):
        load_mmrec(tmp_path)


def test_mmrec_garbage_feature_file(tmp_path):
    write_mmrec(tmp_path)
    (tmp_path / "image_feat.npy").write_bytes(b"\x00garbage bytes, not numpy")
    with pytest.raises(DatasetError, match=r"image_feat\.npy: cannot read"):
        load_mmrec(tmp_path)


def test_mmrec_feature_row_counts_disagree(tmp_path):
    write_mmrec(tmp_path)
    np.save(tmp_path / "text_feat.npy", FEAT_B[:4])
    with pytest.raises(DatasetError, match=r"image_feat\.npy has 6 rows but .*text_feat\.npy has 4"):
        load_mmrec(tmp_path)


def test_mmrec_item_ids_beyond_feature_rows(tmp_path):
    write_mmrec(tmp_path)
    np.save(tmp_path / "image_feat.npy", FEAT_A[:5])
    np.save(tmp_path / "text_feat.npy", FEAT_B[:5])
    with pytest.raises(DatasetError, match=r"toy\.inter: row \d+: item id 5 is out of range"):
        load_mmrec(tmp_path)


def test_feature_matrix_not_2d(tmp_path):
    write_mmgcn(tmp_path)
    np.save(tmp_path / "v_feat.npy", FEAT_A.ravel())
    with pytest.raises(DatasetError, match=r"v_feat\.npy: a feature matrix must be 2-d"):
        load_mmgcn(tmp_path)


def test_mmgcn_neither_train_nor_dict(tmp_path):
    np.save(tmp_path / "v_feat.npy", FEAT_A)
    with pytest.raises(DatasetError, match="neither train.npy nor user_item_dict.npy"):
        load_mmgcn(tmp_path)


def test_mmgcn_train_wrong_shape(tmp_path):
    write_mmgcn(tmp_path)
    np.save(tmp_path / "train.npy", np.zeros((4, 3), np.int64))
    with pytest.raises(DatasetError, match=r"train\.npy: expected \[n, 2\].*shape \(4, 3\)"):
        load_mmgcn(tmp_path)


def test_mmgcn_missing_val_full(tmp_path):
    write_mmgcn(tmp_path)
    (tmp_path / "val_full.npy").unlink()
    with pytest.raises(DatasetError, match=r"val_full\.npy: file not found"):
        load_mmgcn(tmp_path)


def test_mmgcn_items_without_offset(tmp_path):
    write_mmgcn(tmp_path)
    np.save(tmp_path / "train.npy", np.array([(u, i) for u, i, s in ROWS if s == TRAIN]))
    with pytest.raises(DatasetError, match=r"train\.npy: .*offset looks wrong"):
        load_mmgcn(tmp_path)


def test_mmgcn_garbage_and_non_tensor_pt(tmp_path):
    write_mmgcn(tmp_path)
    (tmp_path / "t_feat.pt").write_bytes(b"not a torch file")
    with pytest.raises(DatasetError, match=r"t_feat\.pt: cannot read"):
        load_mmgcn(tmp_path)
    torch.save({"x": torch.from_numpy(FEAT_B)}, tmp_path / "t_feat.pt")
    with pytest.raises(DatasetError, match=r"t_feat\.pt: expected a tensor, got dict"):
        load_mmgcn(tmp_path)


def test_mmgcn_garbage_val_full(tmp_path):
    write_mmgcn(tmp_path)
    (tmp_path / "test_full.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    with pytest.raises(DatasetError, match=r"test_full\.npy: cannot read"):
        load_mmgcn(tmp_path)
