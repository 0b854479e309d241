import torch

from mmgrec_core.training import EarlyStopping


def test_early_stopping_state_round_trips():
    model = torch.nn.Linear(2, 1)
    stopper = EarlyStopping(patience=2)
    stopper.step(0.5, 1, model)
    stopper.step(0.4, 2, model)
    copy = EarlyStopping(patience=2)
    copy.load_state_dict(stopper.state_dict())
    assert copy.best_epoch == 1 and not copy.should_stop
    assert copy.step(0.3, 3, model) and copy.should_stop
