"""Per-user splits: `random_split` (proportional by position) and `leave_last_out` (by time)."""

from __future__ import annotations

import numpy as np
import pytest

from mmgrec_core.data.dataset import TEST, TRAIN, VALID
from mmgrec_core.data.split import leave_last_out, random_split


def per_user_counts(users: np.ndarray, labels: np.ndarray) -> dict[int, tuple[int, int, int]]:
    out = {}
    for u in np.unique(users):
        c = np.bincount(labels[users == u], minlength=3)
        out[int(u)] = (int(c[TRAIN]), int(c[VALID]), int(c[TEST]))
    return out


# ---- random_split ------------------------------------------------------------------------------------------

# Worked by hand from the docstring's rule: the k-th (0-based) of n lands where (k + 0.5) / n falls on the
# cuts 0.8 and 0.9:
#   n=1:  0.5                                  -> 1/0/0
#   n=2:  0.25 0.75                            -> 2/0/0
#   n=3:  0.17 0.5 0.83                        -> 2/1/0
#   n=4:  0.125 0.375 0.625 0.875              -> 3/1/0
#   n=5:  0.1 0.3 0.5 0.7 0.9 (0.9 is test)    -> 4/0/1
#   n=10: 0.05 ... 0.75 | 0.85 | 0.95          -> 8/1/1
#   n=20: ... 0.775 | 0.825 0.875 | 0.925 0.975 -> 16/2/2
BY_HAND = {1: (1, 0, 0), 2: (2, 0, 0), 3: (2, 1, 0), 4: (3, 1, 0), 5: (4, 0, 1), 10: (8, 1, 1),
           20: (16, 2, 2)}


def users_with_sizes(sizes) -> np.ndarray:
    """User u gets sizes[u] interactions, interleaved in the file rather than grouped."""
    users = np.repeat(np.arange(len(sizes)), sizes)
    return users[np.random.default_rng(123).permutation(len(users))]


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_random_split_proportions_per_user_match_the_rule(seed):
    sizes = list(BY_HAND)
    users = users_with_sizes(sizes)
    labels = random_split(users, seed=seed)
    assert labels.dtype == np.int8 and labels.shape == users.shape
    got = per_user_counts(users, labels)
    assert {sizes[u]: c for u, c in got.items()} == BY_HAND


def test_random_split_matches_rule_for_every_size_up_to_60():
    sizes = np.arange(1, 61)
    users = users_with_sizes(sizes)
    got = per_user_counts(users, random_split(users, seed=3))
    for u, n in enumerate(sizes):
        q = (np.arange(n) + 0.5) / n
        want = (int((q < 0.8).sum()), int(((q >= 0.8) & (q < 0.9)).sum()), int((q >= 0.9).sum()))
        assert got[u] == want, n
        assert got[u][0] >= 1


def test_random_split_custom_ratios():
    users = np.zeros(10, np.int64)
    assert np.bincount(random_split(users, ratios=(0.6, 0.2, 0.2)), minlength=3).tolist() == [6, 2, 2]
    assert np.bincount(random_split(users, ratios=(1.0, 0.0, 0.0)), minlength=3).tolist() == [10, 0, 0]


def test_random_split_same_seed_same_labels_different_seed_different_labels():
    users = users_with_sizes([10] * 50)
    a, b, c = random_split(users, seed=5), random_split(users, seed=5), random_split(users, seed=6)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    # ... but the per-user counts do not depend on the seed
    assert per_user_counts(users, a) == per_user_counts(users, c)


def test_random_split_input_order_of_users_does_not_change_counts():
    sizes = [1, 3, 5, 10, 7, 2]
    grouped = np.repeat(np.arange(len(sizes)), sizes)
    shuffled = users_with_sizes(sizes)
    reversed_ = grouped[::-1].copy()
    counts = [per_user_counts(u, random_split(u, seed=0)) for u in (grouped, shuffled, reversed_)]
    assert counts[0] == counts[1] == counts[2]


def test_random_split_accepts_lists_and_non_contiguous_user_ids():
    labels = random_split([42, 42, 42, 7, 42, 42, 42, 42, 42, 42, 42], seed=0)
    assert labels[3] == TRAIN
    assert np.bincount(labels[np.array([0, 1, 2, 4, 5, 6, 7, 8, 9, 10])], minlength=3).tolist() == [8, 1, 1]


def test_random_split_smoke_200k_interactions():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 20_000, 200_000)
    labels = random_split(users, seed=0)
    sizes = np.bincount(users)
    train = np.bincount(users[labels == TRAIN], minlength=len(sizes))
    assert (train[sizes > 0] >= 1).all()
    # closed form of the rule: #train = #{k : (k + 0.5) / n < 0.8} = ceil(0.8 n - 0.5)
    assert np.array_equal(train, np.ceil(0.8 * sizes - 0.5).astype(np.int64))
    share = np.bincount(labels, minlength=3) / len(labels)
    assert abs(share[TRAIN] - 0.8) < 0.01 and abs(share[VALID] - 0.1) < 0.01 and abs(share[TEST] - 0.1) < 0.01


# ---- leave_last_out ----------------------------------------------------------------------------------------


def test_leave_last_out_last_is_test_second_last_is_valid():
    users = np.array([0, 0, 0, 0, 1, 1, 1])
    times = np.array([5, 1, 9, 3, 30, 10, 20])
    labels = leave_last_out(users, times)
    assert labels.dtype == np.int8
    assert labels.tolist() == [VALID, TRAIN, TEST, TRAIN, TEST, TRAIN, VALID]


def test_leave_last_out_users_with_one_or_two_interactions():
    users = np.array([0, 1, 1, 2, 2, 2])
    times = np.array([100, 8, 3, 1, 2, 3])
    labels = leave_last_out(users, times)
    assert labels[0] == TRAIN                       # one interaction: kept for training
    assert labels[1:3].tolist() == [TEST, TRAIN]    # two: the later one is test, no valid
    assert labels[3:].tolist() == [TRAIN, VALID, TEST]


def test_leave_last_out_ties_keep_file_order():
    # user 0's rows 1 and 3 share the latest time: the later row in the file counts as later
    users = np.array([0, 0, 1, 0, 1, 1, 1])
    times = np.array([1, 7, 4, 7, 4, 4, 4])
    labels = leave_last_out(users, times)
    assert labels[[0, 1, 3]].tolist() == [TRAIN, VALID, TEST]
    assert labels[[2, 4, 5, 6]].tolist() == [TRAIN, TRAIN, VALID, TEST]


def test_leave_last_out_interleaved_users_and_large_input():
    rng = np.random.default_rng(1)
    users = rng.integers(0, 5_000, 100_000)
    times = rng.integers(0, 1_000, len(users))          # many ties
    labels = leave_last_out(users, times)
    sizes = np.bincount(users)
    for code, min_size in ((TEST, 2), (VALID, 3)):
        n = np.bincount(users[labels == code], minlength=len(sizes))
        assert np.array_equal(n, (sizes >= min_size).astype(np.int64))
    # the test interaction is a user's latest (last in file among ties)
    order = np.lexsort((np.arange(len(users)), times, users))
    last = order[np.r_[users[order][1:] != users[order][:-1], True]]
    assert (labels[last[sizes[users[last]] >= 2]] == TEST).all()
