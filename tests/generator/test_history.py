import pytest
import torch

from mmgrec_core.data.loaders import load_dataset
from mmgrec_core.data.sampling import UserItems
from mmgrec_core.generator import histories

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


def test_the_target_is_never_in_its_own_input(seen):
    users = torch.arange(10)
    targets = torch.tensor([min(items_of(seen, u)) for u in range(10)])
    h = histories(seen, users, n=1000, exclude=targets)
    for row, u, t in zip(h.tolist(), users.tolist(), targets.tolist()):
        assert {i - 1 for i in row if i} == items_of(seen, u) - {t}


def test_long_histories_are_subsampled_to_n_and_repeatable(seen):
    users = torch.arange(20)
    h = histories(seen, users, n=3)
    assert h.shape[1] == 3
    assert torch.equal(h, histories(seen, users, n=3))                    # inference: fixed choice
    for row, u in zip(h.tolist(), users.tolist()):
        chosen = [i - 1 for i in row if i]
        assert len(chosen) == min(3, len(items_of(seen, u))) and set(chosen) <= items_of(seen, u)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(histories(seen, users, 3, generator=g1), histories(seen, users, 3, generator=g2))
