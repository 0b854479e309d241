import numpy as np
import pytest
import torch

from mmgrec_core.projections import ALL_CODEWORDS, cached_projections, codeword_projections, umap_2d
from mmgrec_core.quantize import ResidualQuantizer
from mmgrec_core.rundir import PROJECTIONS as FILE
from mmgrec_core.tokenizers import Explainable
from mmgrec_core.tokenizers.rqvae import quantizer_space


def test_umap_2d_is_seeded_and_handles_tiny_inputs():
    x = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32)
    a, b = umap_2d(x, seed=1, n_neighbors=5), umap_2d(x, seed=1, n_neighbors=5)
    assert a.shape == (40, 2) and np.isfinite(a).all()
    np.testing.assert_allclose(a, b)
    assert umap_2d(x[:3]).shape == (3, 2)


def test_codeword_projections_have_one_view_per_level_and_one_of_all_codewords():
    rng = np.random.default_rng(0)
    residuals, books = rng.normal(size=(2, 30, 4)), rng.normal(size=(2, 6, 4))
    frame = codeword_projections(residuals, books, n_neighbors=5)
    assert list(frame["view"].unique()) == ["level 1", "level 2", ALL_CODEWORDS]
    level1 = frame[frame["view"] == "level 1"]
    assert (level1["kind"] == "item").sum() == 30 and (level1["kind"] == "codeword").sum() == 6
    assert sorted(level1.loc[level1["kind"] == "codeword", "id"]) == list(range(6))
    every = frame[frame["view"] == ALL_CODEWORDS]
    assert len(every) == 12 and sorted(every["level"].unique()) == [1, 2]


class _RQTokenizer(Explainable):                      # an explainable tokenizer: encoder = identity
    def __init__(self):
        self.x = torch.randn(25, 3, generator=torch.Generator().manual_seed(1))
        self.rqvae = torch.nn.Module()
        self.rqvae.encoder = torch.nn.Identity()
        self.rqvae.quantizer = ResidualQuantizer(levels=2, codebook_size=5, dim=3)
        with torch.no_grad():
            self.rqvae.quantizer.codebooks.copy_(torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(0)))

    def trace(self, item):
        raise NotImplementedError

    def ablations(self, item):
        raise NotImplementedError

    def quantizer_space(self):
        return quantizer_space(self.rqvae, self.x)


def test_quantizer_space_reads_residuals_and_codebooks():
    tok = _RQTokenizer()
    residuals, books = tok.quantizer_space()
    assert residuals.shape == (2, 25, 3) and books.shape == (2, 5, 3)
    np.testing.assert_allclose(residuals[0], tok.x.numpy())
    nearest = ((tok.x[:, None] - tok.rqvae.quantizer.codebooks[0][None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_allclose(residuals[1], (tok.x - tok.rqvae.quantizer.codebooks[0][nearest]).detach().numpy(),
                               atol=1e-6)


def test_cached_projections_are_written_once_and_recomputed_when_inputs_change(tmp_path, monkeypatch):
    tok = _RQTokenizer()
    first = cached_projections(tmp_path, tok, n_neighbors=5)
    assert (tmp_path / FILE).exists()
    import mmgrec_core.projections as proj
    monkeypatch.setattr(proj, "codeword_projections", lambda *a, **k: pytest.fail("should read the cache"))
    again = cached_projections(tmp_path, tok, n_neighbors=5)
    np.testing.assert_allclose(again[["x", "y"]].to_numpy(), first[["x", "y"]].to_numpy())
    monkeypatch.undo()
    with torch.no_grad():
        tok.rqvae.quantizer.codebooks.add_(1.0)
    changed = cached_projections(tmp_path, tok, n_neighbors=5)
    assert not np.allclose(changed[["x", "y"]].to_numpy(), first[["x", "y"]].to_numpy())


def test_cached_projections_of_items_without_codebooks(tmp_path):
    items = np.random.default_rng(0).normal(size=(20, 4))
    frame = cached_projections(tmp_path, None, items, n_neighbors=5)
    assert set(frame["view"]) == {"items"} and len(frame) == 20
    with pytest.raises(ValueError, match="no codebooks"):
        cached_projections(tmp_path, None)


def test_cache_key_follows_the_run_weight_files(tmp_path, monkeypatch):
    tok = _RQTokenizer()
    (tmp_path / "tokenizer.safetensors").write_bytes(b"weights v1")
    cached_projections(tmp_path, tok, n_neighbors=5)
    import mmgrec_core.projections as proj
    monkeypatch.setattr(proj, "codeword_projections", lambda *a, **k: pytest.fail("should read the cache"))
    with torch.no_grad():
        tok.rqvae.quantizer.codebooks.add_(1e-6)          # same files, latents off by rounding: still cached
    cached_projections(tmp_path, tok, n_neighbors=5)
    (tmp_path / "tokenizer.safetensors").write_bytes(b"weights v2")
    with pytest.raises(pytest.fail.Exception):
        cached_projections(tmp_path, tok, n_neighbors=5)
