import numpy as np
import pytest
import torch

from mmgrec_core.data.dataset import InteractionData
from mmgrec_core.data.sampling import UserItems
from mmgrec_core.generator import GeneratorConfig, RecIDGenerator, cooccurrence, sequence_log_probs
from mmgrec_core.generator.cooccurrence import CoOccurrence
from mmgrec_core.recid import RecIDTable

# 4 users x 6 items, training only: items 0 and 1 co-occur for users 0 and 1; item 5 appears only for user 3
TRAIN = {0: [0, 1, 2], 1: [0, 1, 3], 2: [1, 2, 4], 3: [0, 5]}


def world():
    users = [u for u, items in TRAIN.items() for _ in items] + [2, 1]           # + one valid, one test pair
    items = [i for its in TRAIN.values() for i in its] + [5, 4]
    split = [0] * (len(items) - 2) + [1, 2]
    data = InteractionData("toy", 4, 6, users, items, split)
    return data, UserItems(data)


def by_hand(user: int, inputs: list[int]) -> np.ndarray:
    """s_u(i): pairs (j in input, i) of the *other* users, row-weighted by 1 / sqrt(deg_j + 1)."""
    deg = np.bincount([i for its in TRAIN.values() for i in its], minlength=6)
    s = np.zeros(6)
    for other, items in TRAIN.items():
        if other == user:
            continue
        for j in inputs:
            if j in items:
                for i in items:
                    if i != j:
                        s[i] += 1 / np.sqrt(deg[j] + 1)
    s[inputs] = 0
    return s


@pytest.mark.filterwarnings("ignore::mmgrec_core.data.dataset.DatasetWarning")
@pytest.mark.parametrize("dense_from,layout", [(2.0, torch.sparse_csr), (0.0, torch.strided)])
def test_scores_count_only_other_users_pairs(monkeypatch, dense_from, layout):
    monkeypatch.setattr(cooccurrence, "DENSE_FROM", dense_from)       # the sparse and the dense S^T alike
    data, seen = world()
    co = CoOccurrence(seen)
    assert co.matrix.layout == layout
    cases = [(0, [0]), (0, [0, 1]), (1, [1]), (3, [0]), (3, [0, 5])]       # training inputs and a full history
    history = torch.tensor([[i + 1 for i in inp] + [0] * (2 - len(inp)) for _, inp in cases])
    got = co.scores(history, torch.tensor([u for u, _ in cases]))
    for row, (user, inputs) in enumerate(cases):
        assert torch.allclose(got[row], torch.tensor(by_hand(user, inputs), dtype=torch.float32), atol=1e-6)
    # user 3 alone has items 0 and 5 together: predicting 5 from 0 sees no evidence for it (its own pair is out)
    assert got[3, 5] == 0


@pytest.mark.filterwarnings("ignore::mmgrec_core.data.dataset.DatasetWarning")
def test_node_mass_sums_the_scores_under_every_trie_node():
    data, seen = world()
    codes = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [1, 2], [0, 2]])
    table = RecIDTable(codes, data.popularity, [str(i) for i in range(6)], codebook_size=3)
    trie = table.trie
    co = CoOccurrence(seen)
    history, users = torch.tensor([[1, 0], [2, 3]]), torch.tensor([0, 2])
    scores = co.scores(history, users)
    mass = co.node_mass(history, users, trie)
    paths = trie.item_paths()                                                  # [I, T + 1]
    pop = torch.from_numpy(data.popularity + 1.0).float()
    for d in range(trie.depth + 1):
        expected = torch.zeros(2, trie.num_prefixes(d)).index_add_(1, paths[:, d], scores)
        assert torch.allclose(mass.users[d], expected, atol=1e-5)
        expected_pop = torch.zeros(trie.num_prefixes(d)).index_add_(0, paths[:, d], pop / pop.sum())
        assert torch.allclose(mass.popularity[d], expected_pop, atol=1e-6)
    assert torch.allclose(mass.users[0][:, 0], scores.sum(1))


@pytest.mark.filterwarnings("ignore::mmgrec_core.data.dataset.DatasetWarning")
def test_the_evidence_adds_a_log_p_to_every_level_and_factorises_along_the_trie():
    """With a network that says nothing (zero token embeddings and biases, no transition tables) and a_d = 1,
    p(item) is exactly p_u(item) = s_u(i) / sum s_u + kappa pop(i): the evidence factorises along the trie."""
    data, seen = world()
    codes = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [1, 2], [0, 2]])
    table = RecIDTable(codes, data.popularity, [str(i) for i in range(6)], codebook_size=3)
    model = RecIDGenerator(GeneratorConfig(dim=8, heads=1, transition=False), torch.randn(6, 4),
                           table.trie.vocab).eval()
    with torch.no_grad():
        for e, b in zip(model.tokens, model.token_bias):
            e.weight.zero_()
            b.zero_()
    co = CoOccurrence(seen)
    history, users = torch.tensor([[1, 0], [2, 3]]), torch.tensor([0, 2])
    mass = co.node_mass(history, users, table.trie)
    got = sequence_log_probs(model, history, table.trie, torch.from_numpy(table.tokens), mass)
    s = co.scores(history, users)
    pop = torch.from_numpy(data.popularity + 1.0).float()
    expected = s / s.sum(1, keepdim=True) + model.evidence_smooth.exp() * pop / pop.sum()
    assert torch.allclose(got, torch.log(expected / expected.sum(1, keepdim=True)), atol=1e-5)
    with pytest.raises(ValueError, match="cooccurrence"):
        sequence_log_probs(model, history, table.trie, torch.from_numpy(table.tokens))
