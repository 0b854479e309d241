import numpy as np
import pytest

from mmgrec_core.metrics import hit_matrix, ndcg_at_k, recall_at_k

# Three users, four ranked items each; user 1 has no hit, user 2 one hit at rank 1 (0-based).
HITS = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0]], dtype=bool)
N_REL = np.array([2, 3, 1])


def test_recall_by_hand():
    assert recall_at_k(HITS, N_REL, 2) == pytest.approx([1 / 2, 0, 1])
    assert recall_at_k(HITS, N_REL, 4) == pytest.approx([2 / 2, 0, 1])


def test_ndcg_by_hand():
    # user 0 @2: DCG = 1/log2(2) = 1; IDCG (2 relevant) = 1 + 1/log2(3) = 1.63093
    # user 2 @2: DCG = 1/log2(3) = 0.63093; IDCG (1 relevant) = 1
    assert ndcg_at_k(HITS, N_REL, 2) == pytest.approx([1 / 1.6309298, 0, 0.6309298], rel=1e-6)
    # user 0 @4: DCG = 1 + 1/log2(4) = 1.5; user 1 @4: IDCG over min(4, 3) = 3 ranks, DCG 0
    assert ndcg_at_k(HITS, N_REL, 4) == pytest.approx([1.5 / 1.6309298, 0, 0.6309298], rel=1e-6)


def test_ndcg_is_one_for_a_perfect_list():
    hits = np.array([[1, 1, 0], [1, 0, 0]], dtype=bool)
    assert ndcg_at_k(hits, np.array([2, 1]), 3) == pytest.approx([1, 1])
    # more relevant items than K: IDCG is capped at K hits
    assert ndcg_at_k(np.ones((1, 3), bool), np.array([10]), 3) == pytest.approx([1])


def test_hit_matrix_uses_each_users_own_items_and_ignores_padding():
    num_items = 10
    relevant = np.sort(np.array([0 * num_items + 3, 1 * num_items + 7]))
    users = np.array([0, 1])
    recs = np.array([[3, 7, -1], [3, 7, 0]])
    assert hit_matrix(users, recs, relevant, num_items).tolist() == [[True, False, False], [False, True, False]]
