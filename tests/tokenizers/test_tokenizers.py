import json

import numpy as np
import pandas as pd
import pytest

from mmgrec_core.cli import main
from mmgrec_core.data.loaders import load_dataset
from mmgrec_core.tokenizers import TOKENIZERS, make_tokenizer, table_stats
from mmgrec_core.tokenizers.hkmeans import hierarchical_kmeans

pytestmark = pytest.mark.filterwarnings("ignore::mmgrec_core.data.dataset.DatasetWarning")
FAST = {"graph_rqvae": dict(steps=200), "hkmeans": dict(), "rqvae": dict(steps=200),
        "late_fusion": dict(steps=200), "bbqrec": dict(steps=200)}


@pytest.fixture(scope="module")
def data():
    return load_dataset("demo:items=250,users=250,seed=5")


@pytest.mark.parametrize("name", TOKENIZERS)
def test_every_tokenizer_gives_unique_healthy_rec_ids(data, name):
    table = make_tokenizer(name, codebook_size=16, **FAST[name]).fit(data)
    stats = table_stats(table)
    assert stats["unique"] and table.num_items == data.num_items
    assert stats["usage"][0] >= 0.9                   # the first level never collapses
    assert 0 <= stats["collision_rate"] < 0.5


def test_late_fusion_concatenates_modalities_with_separators(data):
    table = make_tokenizer("late_fusion", codebook_size=16, separator=True, steps=100).fit(data)
    m = len(data.features)
    assert table.levels == 3 * m + (m - 1)
    assert (table.tokens[:, 3] == 16).all() and table.codebook_size == 17


def test_hierarchical_kmeans_splits_only_large_groups():
    import torch
    x = torch.randn(40, 4, generator=torch.Generator().manual_seed(0))
    codes = hierarchical_kmeans(x, levels=3, k=4, seed=0)
    assert codes.shape == (40, 3) and codes.max() < 4
    # a group of at most k items gets distinct codes at the next level
    _, groups = np.unique(codes[:, :2], axis=0, return_inverse=True)
    for g in np.unique(groups):
        members = codes[groups.ravel() == g]
        if len(members) <= 4:
            assert len(np.unique(members[:, 2])) == len(members)


def test_tokenize_cli_writes_parquet_and_stats(tmp_path):
    rc = main(["tokenize", "--dataset", "demo:items=150,users=150", "--tokenizer", "rqvae", "--codebook", "8",
               "--out", str(tmp_path)])
    assert rc == 0
    stats = json.loads((tmp_path / "tokenizer_stats.json").read_text())
    keys = {"tokenizer", "levels", "codebook", "collision_rate", "usage", "perplexity", "unique", "seconds"}
    assert keys <= set(stats)
    assert stats["unique"] is True and len(stats["usage"]) == 3
    frame = pd.read_parquet(tmp_path / "rec_ids.parquet")
    assert list(frame.columns) == ["item", "name", "c1", "c2", "c3", "p"]
