import numpy as np
import pytest
import torch

from mmgrec_core.data.dataset import TEST, TRAIN, VALID, InteractionData
from mmgrec_core.evaluate import evaluate, evaluate_splits

pytestmark = pytest.mark.filterwarnings("ignore::mmgrec_core.data.dataset.DatasetWarning")  # cold items by design


def tiny() -> InteractionData:
    # user 0: train {0}, valid {3}, test {1, 2}; user 1: train {3}, valid {0}, test {4}; user 2: train {2}, valid {1}
    users = [0, 0, 0, 0, 1, 1, 1, 2, 2]
    items = [0, 3, 1, 2, 3, 0, 4, 2, 1]
    split = [TRAIN, VALID, TEST, TEST, TRAIN, VALID, TEST, TRAIN, VALID]
    return InteractionData("tiny", 3, 5, np.array(users), np.array(items), np.array(split))


class Fixed:
    """Returns a fixed list per user, for hand-computed metrics."""

    def __init__(self, lists):
        self.lists = torch.tensor(lists)

    def recommend(self, users, k):
        return self.lists[users, :k]


def test_metrics_by_hand():
    model = Fixed([[1, 4, 2], [0, 4, 1], [0, 1, 3]])
    m = evaluate(model, tiny(), "test", ks=(1, 3))
    # test users are 0 and 1 (user 2 has no test item and is not averaged)
    # user 0: hits [1, 0, 1], 2 relevant; user 1: [0, 1, 0], 1 relevant
    assert m["recall@1"] == pytest.approx((1 / 2 + 0) / 2)
    assert m["recall@3"] == pytest.approx((2 / 2 + 1) / 2)
    ndcg0 = (1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3))
    ndcg1 = (1 / np.log2(3)) / 1
    assert m["ndcg@3"] == pytest.approx((ndcg0 + ndcg1) / 2)
    assert m["ndcg@1"] == pytest.approx((1 + 0) / 2)
    assert m["top1_share"] == 0.5                       # first items 1 and 0: each is half the users'


def test_top1_share_is_one_when_every_user_gets_the_same_first_item():
    assert evaluate(Fixed([[4, 1, 2], [4, 0, 1], [4, 0, 1]]), tiny(), "test", ks=(3,))["top1_share"] == 1.0


def test_training_items_are_refused():
    leaky = Fixed([[0, 1, 2], [4, 1, 2], [0, 1, 3]])      # item 0 is user 0's training item
    with pytest.raises(AssertionError, match="training item"):
        evaluate(leaky, tiny(), "test", ks=(3,))


def test_duplicates_are_refused():
    with pytest.raises(AssertionError, match="twice"):
        evaluate(Fixed([[1, 1, 2], [4, 1, 2], [0, 1, 3]]), tiny(), "test", ks=(3,))


def test_batches_do_not_change_the_result():
    model = Fixed([[1, 4, 2], [0, 4, 1], [0, 1, 3]])
    assert evaluate(model, tiny(), "valid", ks=(2,), batch_size=1) == evaluate(model, tiny(), "valid", ks=(2,))


class Counting(Fixed):
    """A fixed list per user that also records which users were asked for."""

    def __init__(self, lists):
        super().__init__(lists)
        self.asked = []

    def recommend(self, users, k):
        self.asked += users.tolist()
        return super().recommend(users, k)


def test_splits_together_rank_each_user_once_and_equal_each_split_alone():
    model = Counting([[1, 4, 2], [0, 4, 1], [0, 1, 3]])
    both = evaluate_splits(model, tiny(), ("valid", "test"), ks=(1, 3), batch_size=2)
    assert sorted(model.asked) == [0, 1, 2]                 # valid users 0, 1, 2 and test users 0, 1: once each
    # valid: user 0 [1, 4, 2] misses 3; user 1 [0, 4, 1] finds 0 first; user 2 [0, 1, 3] finds 1 second
    assert both["valid"]["recall@3"] == pytest.approx(2 / 3)
    assert both["valid"]["ndcg@3"] == pytest.approx((1 + 1 / np.log2(3)) / 3)
    assert both["valid"]["top1_share"] == pytest.approx(2 / 3)    # item 0 first for users 1 and 2
    for split in ("valid", "test"):
        assert both[split] == evaluate(model, tiny(), split, ks=(1, 3))
