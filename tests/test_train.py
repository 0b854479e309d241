import torch

from mmgrec_core.train import length_buckets
from mmgrec_core.training import EarlyStopping


def test_length_buckets_cover_every_instance_once_with_similar_lengths():
    lengths = torch.randint(0, 50, (1000,), generator=torch.Generator().manual_seed(0))
    batches = length_buckets(lengths, 64, torch.Generator().manual_seed(1), chunk=4)
    assert sorted(torch.cat(batches).tolist()) == list(range(1000))
    assert max(len(b) for b in batches) == 64
    spread = torch.tensor([float(lengths[b].max() - lengths[b].min()) for b in batches]).mean()
    assert spread < 20                        # random batches of 64 would span ~48
    again = length_buckets(lengths, 64, torch.Generator().manual_seed(1), chunk=4)
    assert all(torch.equal(a, b) for a, b in zip(batches, again))


def test_early_stopping_state_round_trips():
    model = torch.nn.Linear(2, 1)
    stopper = EarlyStopping(patience=2)
    stopper.step(0.5, 1, model)
    stopper.step(0.4, 2, model)
    copy = EarlyStopping(patience=2)
    copy.load_state_dict(stopper.state_dict())
    assert copy.best_epoch == 1 and not copy.should_stop
    assert copy.step(0.3, 3, model) and copy.should_stop
