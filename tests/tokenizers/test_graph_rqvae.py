import numpy as np
import pytest

from mmgrec_core.data.loaders import load_dataset
from mmgrec_core.tokenizers.graph_rqvae import GraphRQVAEConfig, GraphRQVAETokenizer

pytestmark = pytest.mark.filterwarnings("ignore::mmgrec_core.data.dataset.DatasetWarning")
SMALL = GraphRQVAEConfig(codebook_size=16, epochs=2, batch_size=512, rq_batch_size=256)


@pytest.fixture(scope="module")
def fitted():
    data = load_dataset("demo:items=300,users=300,seed=4")
    tok = GraphRQVAETokenizer(SMALL)
    return data, tok, tok.fit(data)


def test_codes_are_healthy_unique_and_reproducible(fitted):
    data, tok, table = fitted
    assert table.tokens.shape == (data.num_items, SMALL.levels + 1)
    assert len(np.unique(table.tokens, axis=0)) == data.num_items
    assert min(tok.model.rqvae.quantizer.usage(tok.encode(tok.h_items))) >= 0.8
    again = GraphRQVAETokenizer(SMALL).fit(data)
    assert np.array_equal(again.tokens, table.tokens)


def test_table_codes_are_the_encoding_of_the_item_representations(fitted):
    _, tok, table = fitted
    assert np.array_equal(tok.encode(tok.h_items).numpy(), table.tokens[:, :-1])


def test_graph_holds_training_edges_only(fitted):
    data, tok, _ = fitted
    assert tok.adj_t.values().numel() == 2 * data.counts()["train"]
