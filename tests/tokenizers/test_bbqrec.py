import dataclasses
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load, save

from mmgrec_core.data.loaders import load_dataset
from mmgrec_core.quantize import ResidualQuantizer
from mmgrec_core.tokenizers import make_tokenizer
from mmgrec_core.tokenizers.bbqrec import BBQRecConfig, BBQRecTokenizer, club_upper_bound, gaussian_nll, leave_one_out

pytestmark = pytest.mark.filterwarnings("ignore::mmgrec_core.data.dataset.DatasetWarning")
# 60 steps, then 40 after re-seeding the codebooks: progress reports once, at step 100
TINY = BBQRecConfig(hidden_dim=16, latent_dim=8, levels=2, codebook_size=16, steps=60, polish_steps=40,
                    batch_size=64, user_batch=32)


@pytest.fixture(scope="module")
def data():
    return load_dataset("demo:items=120,users=120,seed=5")


@pytest.fixture(scope="module")
def fitted(data):
    tok, log = BBQRecTokenizer(TINY, seed=3), []
    codes = tok.fit_codes(data, lambda step, info: log.append((step, info)))
    return tok, codes, log


def test_club_upper_bound_by_hand():
    # q(.|x_1) = N(0, 1), q(.|x_2) = N(1, 4); targets y = (1, 3).
    # i=1: positive -(1-0)^2/2 = -0.5; negative -mean((1-0)^2, (3-0)^2)/2 = -5/2; difference 2.0
    # i=2: positive -(3-1)^2/(2*4) = -0.5; negative -mean((1-1)^2, (3-1)^2)/(2*4) = -0.25; difference -0.25
    # mean (2.0 - 0.25) / 2 = 0.875
    mu, logvar, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[0.0], [math.log(4.0)]]), torch.tensor([[1.0], [3.0]])
    assert club_upper_bound(mu, logvar, y).item() == pytest.approx(0.875)
    # -log N(y; mu, var) without 2π: ((1-0)^2/1 + 0)/2 = 0.5 and ((3-1)^2/4 + log 4)/2 = 0.5 + 0.693; mean
    assert gaussian_nll(mu, logvar, y).item() == pytest.approx((0.5 + 0.5 + math.log(4.0) / 2) / 2)


def test_club_closed_form_equals_all_pairs():
    g = torch.Generator().manual_seed(0)
    mu, logvar, y = (torch.randn(7, 3, generator=g) for _ in range(3))
    log_q = -0.5 * ((y[None] - mu[:, None]).pow(2) / logvar.exp()[:, None] + logvar[:, None]).sum(-1)  # [i, j]
    brute = (log_q.diagonal() - log_q.mean(1)).mean()
    assert club_upper_bound(mu, logvar, y).item() == pytest.approx(brute.item(), abs=1e-5)


def test_leave_one_out_holds_out_one_item_per_user():
    indptr, indices = torch.tensor([0, 3, 5]), torch.tensor([1, 2, 3, 0, 4])    # user 0: {1,2,3}, user 1: {0,4}
    rows, items, targets = leave_one_out(indptr, indices, torch.tensor([1, 0]), torch.Generator().manual_seed(0))
    own = {0: {0, 4}, 1: {1, 2, 3}}                                               # by row in the batch
    for r in (0, 1):
        assert targets[r].item() in own[r]
        assert set(items[rows == r].tolist()) == own[r] - {targets[r].item()}


def test_one_codebook_stack_serves_id_and_every_modality(data, fitted):
    tok, codes, _ = fitted
    quantizers = [m for m in tok.model.modules() if isinstance(m, ResidualQuantizer)]
    assert len(quantizers) == 1 and [k for k in tok.state() if k.endswith("codebooks")] == ["quantizer.codebooks"]
    q, parts, levels = quantizers[0], 1 + len(data.features), TINY.levels
    assert codes.shape == (data.num_items, levels * parts) and tok.vocab_size == TINY.codebook_size
    z, v = tok.latents(), tok.representations()                                  # [P, I, D], [I, P x D]
    d = TINY.latent_dim
    for p in range(parts):                                     # part p's codes are the shared quantizer's codes
        block = torch.from_numpy(codes[:, p * levels:(p + 1) * levels])
        assert torch.equal(block, q.encode(z[p]))
        assert torch.allclose(v[:, p * d:(p + 1) * d], q.decode_codes(block))


def test_fit_is_healthy_reproducible_and_restorable(data, fitted):
    tok, codes, log = fitted
    assert codes.dtype == np.int64 and codes.min() >= 0 and codes.max() < TINY.codebook_size
    assert tok.representations().shape == (data.num_items, (1 + len(data.features)) * TINY.latent_dim)
    assert tok.representations().dtype == torch.float32
    assert [step for step, _ in log] == [100]
    assert {"loss", "recon", "rq", "rec", "mim"} <= set(log[0][1]) and all(map(math.isfinite, log[0][1].values()))

    again = BBQRecTokenizer(TINY, seed=3)
    assert np.array_equal(again.fit_codes(data), codes)
    assert torch.equal(again.representations(), tok.representations())

    state = load(save(tok.state()))                               # through safetensors, as a run stores it
    assert "item_id" in state
    back = BBQRecTokenizer(TINY, seed=3).restore(data, state)
    assert np.array_equal(back.codes.cpu().numpy(), codes)
    assert torch.equal(back.representations(), tok.representations())


def test_registry_config_and_no_features(data):
    assert isinstance(make_tokenizer("bbqrec", levels=2), BBQRecTokenizer)
    with pytest.raises(ValueError, match="temperature"):
        BBQRecConfig(temperature=0.0)
    bare = dataclasses.replace(data, features={})
    with pytest.raises(ValueError, match=r"demo:items=120.*bbqrec tokenizer needs at least one modality"):
        BBQRecTokenizer(TINY).fit_codes(bare)
