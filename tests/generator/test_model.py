import pytest
import torch

from mmgrec_core.generator import GeneratorConfig, RecIDGenerator
from mmgrec_core.generator.attention import RelationAwareSelfAttention

VOCAB = (4, 4, 3)


def make(pe="relation", item_emb="graph", user_token=True, seed=0):
    torch.manual_seed(seed)
    config = GeneratorConfig(dim=16, heads=2, pe=pe, item_emb=item_emb, user_token=user_token)
    return RecIDGenerator(config, torch.randn(30, 8), torch.randn(5, 6), VOCAB).eval()


@pytest.mark.parametrize("pe", ["relation", "none"])
def test_encoder_treats_the_history_as_a_set(pe):
    model = make(pe)
    history = torch.tensor([[3, 7, 9, 12]])
    perm = torch.tensor([2, 0, 3, 1])
    memory, _ = model.encode(history, torch.tensor([1]))
    permuted, _ = model.encode(history[:, perm], torch.tensor([1]))
    assert torch.allclose(memory[:, 1:][:, perm], permuted[:, 1:], atol=1e-5)          # 0 is the user token
    assert torch.allclose(memory[:, 0], permuted[:, 0], atol=1e-5)


def test_sinusoidal_encoding_makes_order_matter():
    model = make("sinusoidal")
    memory, _ = model.encode(torch.tensor([[3, 7, 9]]), torch.tensor([1]))
    swapped, _ = model.encode(torch.tensor([[7, 3, 9]]), torch.tensor([1]))
    assert not torch.allclose(memory[:, [0, 2, 1, 3]], swapped, atol=1e-4)


def test_relation_term_makes_attention_user_specific():
    history = torch.tensor([[3, 7, 9], [3, 7, 9]])
    users = torch.tensor([0, 4])
    with_relation, _ = make("relation", user_token=False).encode(history, users)
    without, _ = make("none", user_token=False).encode(history, users)
    assert not torch.allclose(with_relation[0], with_relation[1], atol=1e-4)
    assert torch.allclose(without[0], without[1], atol=1e-6)


def test_padding_does_not_change_the_result():
    model = make()
    short, _ = model.encode(torch.tensor([[3, 7]]), torch.tensor([2]))
    padded, pad = model.encode(torch.tensor([[3, 7, 0, 0]]), torch.tensor([2]))
    assert pad.tolist() == [[False, False, False, True, True]]                       # user token first
    assert torch.allclose(short, padded[:, :3], atol=1e-5)
    prefix = torch.tensor([[[1]]])
    assert torch.allclose(model.next_log_probs(*model.encode(torch.tensor([[3, 7]]), torch.tensor([2])), prefix),
                          model.next_log_probs(padded, pad, prefix), atol=1e-5)


@pytest.mark.parametrize("user_token", [True, False])
def test_empty_history_still_gives_a_distribution(user_token):
    model = make(item_emb="learned", user_token=user_token)
    memory, pad = model.encode(torch.zeros(2, 3, dtype=torch.long), torch.tensor([0, 1]))
    logp = model.next_log_probs(memory, pad, torch.zeros(2, 1, 0, dtype=torch.long))
    assert logp.shape == (2, 1, VOCAB[0]) and torch.isfinite(logp).all()
    assert torch.allclose(logp.exp().sum(-1), torch.ones(2, 1))


def test_loss_is_the_mean_token_cross_entropy_and_learns():
    model = make()
    model.train()
    history, users = torch.tensor([[3, 7, 9], [1, 2, 0]]), torch.tensor([0, 1])
    targets = torch.tensor([[1, 2, 0], [3, 0, 2]])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model.loss(history, users, targets).item()
    for _ in range(30):
        opt.zero_grad()
        model.loss(history, users, targets).backward()
        opt.step()
    model.eval()
    assert model.loss(history, users, targets).item() < first / 4
    scores = model.sequence_log_probs(history, users, targets)            # [user, candidate]
    assert (scores.diagonal() > scores.flip(1).diagonal()).all()


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="pe=.rotary.: must be one of"):
        GeneratorConfig(pe="rotary")
    with pytest.raises(ValueError, match="item_emb"):
        GeneratorConfig(item_emb="clip")
    with pytest.raises(ValueError, match="divisible"):
        RelationAwareSelfAttention(10, 3, 4)
