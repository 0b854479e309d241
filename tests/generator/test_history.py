import pytest
import torch

from mmgrec_core.data.loaders import load_dataset
from mmgrec_core.data.sampling import UserItems
from mmgrec_core.generator import histories, split_histories

pytestmark = pytest.mark.filterwarnings("ignore::mmgrec_core.data.dataset.DatasetWarning")


@pytest.fixture(scope="module")
def seen():
    return UserItems(load_dataset("demo:items=100,users=60,seed=4"))


def items_of(seen, user):
    return set(seen.indices[seen.indptr[user]:seen.indptr[user + 1]].tolist())


def test_histories_hold_the_training_items_shifted_by_one(seen):
    users = torch.arange(10)
    h = histories(seen, users, n=1000)
    for row, u in zip(h.tolist(), users.tolist()):
        assert {i - 1 for i in row if i} == items_of(seen, u)


def test_a_training_split_never_puts_a_target_in_its_own_input(seen):
    users = torch.arange(40)
    gen = torch.Generator().manual_seed(0)
    history, targets, mask = split_histories(seen, users, n=1000, max_targets=1000, keep=(0.2, 0.8), generator=gen)
    for u, row, t, m in zip(users.tolist(), history.tolist(), targets.tolist(), mask.tolist()):
        given = {i - 1 for i in row if i}
        held = {x for x, ok in zip(t, m) if ok}
        assert held and not given & held and given | held == items_of(seen, u)    # a partition, >= 1 target
    assert (targets[~mask] == -1).all()
    assert (history[:, -1] > 0).any()              # as wide as the longest input: no column of padding alone
    assert ((history > 0).sum(1) == (history > 0).cumprod(1).sum(1)).all()         # left-aligned, no gaps


def test_training_splits_are_capped_and_repeat_with_the_seed(seen):
    users = torch.arange(40)
    a = split_histories(seen, users, 3, 2, (0.5, 0.5), torch.Generator().manual_seed(1))
    b = split_histories(seen, users, 3, 2, (0.5, 0.5), torch.Generator().manual_seed(1))
    assert a[0].shape[1] <= 3 and a[1].shape[1] <= 2
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_long_histories_are_subsampled_to_n_and_repeatable(seen):
    users = torch.arange(20)
    h = histories(seen, users, n=3)
    assert h.shape[1] == 3
    assert torch.equal(h, histories(seen, users, n=3))                    # inference: fixed choice
    for row, u in zip(h.tolist(), users.tolist()):
        chosen = [i - 1 for i in row if i]
        assert len(chosen) == min(3, len(items_of(seen, u))) and set(chosen) <= items_of(seen, u)
