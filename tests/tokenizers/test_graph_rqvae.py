import numpy as np
import pytest
import torch

from mmgrec_core.data.loaders import load_dataset
from mmgrec_core.quantize import balanced_last_level
from mmgrec_core.tokenizers.graph_rqvae import GraphRQVAEConfig, GraphRQVAETokenizer, spectral_items

pytestmark = pytest.mark.filterwarnings("ignore::mmgrec_core.data.dataset.DatasetWarning")
SMALL = GraphRQVAEConfig(codebook_size=16, steps=300, polish_steps=50, batch_size=256)


@pytest.fixture(scope="module")
def fitted():
    data = load_dataset("demo:items=300,users=300,seed=4")
    tok = GraphRQVAETokenizer(SMALL)
    return data, tok, tok.fit(data)


def test_codes_are_healthy_unique_and_reproducible(fitted):
    data, tok, table = fitted
    assert table.tokens.shape == (data.num_items, SMALL.levels + 1)
    assert len(np.unique(table.tokens, axis=0)) == data.num_items
    assert min(tok.rqvae.quantizer.usage(tok.rqvae.encode(tok.h_items))) >= 0.8
    assert table.collision_rate == 0.0                  # 300 items, 16^2 prefixes: balancing separates them all
    again = GraphRQVAETokenizer(SMALL).fit(data)
    assert np.array_equal(again.tokens, table.tokens)


def test_codes_are_the_encoding_with_a_balanced_last_level(fitted):
    _, tok, table = fitted
    nearest = tok.rqvae.encode(tok.h_items).numpy()
    assert np.array_equal(nearest[:, :-1], table.tokens[:, :-2])                     # c1..c_{M-1}: nearest
    moved = (nearest[:, -1] != table.tokens[:, -2]).mean()
    assert 0 < moved < 0.5                                                            # only collisions move


def test_balanced_last_level_by_hand():
    codes = torch.tensor([[0, 1], [0, 1], [1, 1]])                # items 0 and 1 share prefix 0 and code 1
    book = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 5.0]])
    residual = torch.tensor([[0.9, 0.0], [1.2, 0.0], [1.0, 0.0]])
    out = balanced_last_level(codes, residual, book)
    assert out.tolist() == [[0, 0], [0, 1], [1, 1]]              # item 0 moves to its runner-up, item 2 stays


def test_the_spectral_embedding_uses_training_edges_only(fitted):
    data, _, _ = fitted
    base = spectral_items(data, 8, 2.0)
    cold = data.popularity == 0
    assert np.abs(base[cold]).max() == 0 and np.abs(base[~cold]).sum(1).min() > 0
    from mmgrec_core.data.dataset import InteractionData
    shifted = InteractionData(name="x", num_users=data.num_users, num_items=data.num_items, users=data.users,
                              items=data.items, split=np.select([data.split == 1, data.split == 2], [2, 1], 0))
    np.testing.assert_allclose(np.abs(spectral_items(shifted, 8, 2.0)), np.abs(base), atol=1e-5)
