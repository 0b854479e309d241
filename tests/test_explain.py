import numpy as np
import pytest

from mmgrec_core.data.loaders import load_dataset
from mmgrec_core.explain import explain
from mmgrec_core.tokenizers import make_tokenizer

pytestmark = pytest.mark.filterwarnings("ignore::mmgrec_core.data.dataset.DatasetWarning")


@pytest.fixture(scope="module", params=["graph_rqvae", "rqvae"])
def fitted(request):
    data = load_dataset("demo:items=200,users=200,seed=6")
    fast = {"graph_rqvae": {"steps": 200}, "rqvae": {"steps": 200}}[request.param]
    tok = make_tokenizer(request.param, codebook_size=8, **fast)
    return data, tok, tok.fit(data)


def test_explanation_agrees_with_the_table(fitted):
    data, tok, table = fitted
    for item in (0, 17, 199):
        e = explain(tok, table, item)
        assert e.rec_id == table.rec_id(item)
        assert tuple(e.levels["code"]) == e.rec_id[:-1]
        for level, row in e.levels.iterrows():                 # a nearer codeword only where it had no room
            if row["margin"] < 0:
                assert tok.name == "graph_rqvae"
                crowd = table.prefix_items((*e.rec_id[:level], int(row["runner_up"])))
                room = table.codebook_size ** (table.levels - 1 - level)
                assert len(crowd) == room if level < table.levels - 1 else len(crowd) >= 1
        assert np.allclose(e.levels["residual_after"][:-1], e.levels["residual_before"][1:])
        assert item in set(e.group["item"]) and list(e.group["p"]) == list(range(len(e.group)))
        assert e.levels["siblings"].iloc[-1] == len(e.group) - 1
        assert set(e.ablation["without"]) >= set(data.features)


def test_unknown_item_is_a_clear_error(fitted):
    _, tok, table = fitted
    with pytest.raises(ValueError, match="not in the catalog"):
        explain(tok, table, table.num_items)
