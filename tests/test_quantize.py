import math

import pytest
import torch

from mmgrec_core.quantize import ResidualQuantizer, balanced_codes, capacity_assign, code_perplexity, code_usage, kmeans


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny matmuls on a shared 2-core machine: a second BLAS thread waits for a busy core (~20 ms/op)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def blobs(seed: int = 0, k: int = 64, per: int = 16, d: int = 8) -> torch.Tensor:
    """k well separated gaussian blobs, [k * per, d]."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, d, generator=g) * 3
    return (centers[:, None] + 0.1 * torch.randn(k, per, d, generator=g)).reshape(-1, d)


def toy() -> ResidualQuantizer:
    q = ResidualQuantizer(levels=1, codebook_size=2, dim=2, kmeans_init=False, restart_dead=False)
    with torch.no_grad():
        q.codebooks.copy_(torch.tensor([[[1.0, 0.0], [3.0, 0.0]]]))
    return q


def test_loss_and_codes_match_a_hand_computation():
    z = torch.tensor([[0.0, 0.0], [3.0, 1.0]])
    out = toy()(z)
    # point 0 -> codeword 0 (dist 1 vs 9); point 1 -> codeword 1 (dist 1 vs 5)
    assert out.codes.tolist() == [[0], [1]]
    # per point ||r - b||^2 = 1, codebook + 0.25 commitment = 1.25 each, mean over the batch
    assert out.loss.item() == pytest.approx(1.25)
    assert out.quantized.tolist() == [[1.0, 0.0], [3.0, 0.0]]
    assert torch.allclose(out.residual_norms, torch.tensor([[0.0, 1.0], [math.sqrt(10), 1.0]]))


def test_straight_through_passes_gradients_to_z_and_the_loss_to_codebooks():
    q = toy()
    z = torch.tensor([[0.0, 0.0], [3.0, 1.0]], requires_grad=True)
    out = q(z)
    out.quantized.sum().backward(retain_graph=True)
    assert z.grad.tolist() == [[1.0, 1.0], [1.0, 1.0]]          # identity through sg(z_hat - z)
    z.grad = None
    out.loss.backward()
    # commitment: d/dz 0.25 * mean ||z - b||^2 = 0.25 * 2 (z - b) / N
    assert torch.allclose(z.grad, torch.tensor([[-0.25, 0.0], [0.0, 0.25]]))
    assert torch.isfinite(q.codebooks.grad).all() and q.codebooks.grad.abs().sum() > 0


def test_each_codebook_learns_only_from_its_own_level():
    q = ResidualQuantizer(levels=2, codebook_size=1, dim=1, kmeans_init=False, restart_dead=False)
    with torch.no_grad():
        q.codebooks.copy_(torch.tensor([[[1.0]], [[0.5]]]))
    z = torch.tensor([[3.0]], requires_grad=True)
    q(z).loss.backward()
    # r1 = 3, b1 = 1, r2 = r1 - sg(b1) = 2, b2 = 0.5: d/db_m (r_m - b_m)^2 = -2 (r_m - b_m)
    assert q.codebooks.grad.flatten().tolist() == pytest.approx([-4.0, -3.0])
    # commitment 0.25 * 2 (r_m - b_m) at both levels, since r2 depends on z
    assert z.grad.item() == pytest.approx(0.25 * 2 * 2 + 0.25 * 2 * 1.5)


def test_eval_quantized_equals_decoded_codes_and_loss_is_finite():
    torch.manual_seed(0)
    q = ResidualQuantizer(levels=3, codebook_size=16, dim=8)
    z = torch.randn(100, 8)
    q.train()(z)                                                  # k-means init on this batch
    out = q.eval()(z)
    assert out.codes.dtype == torch.int64 and out.codes.shape == (100, 3)
    assert torch.allclose(q.decode_codes(out.codes), out.quantized, atol=1e-5)
    assert torch.equal(q.encode(z), out.codes)
    assert torch.isfinite(out.loss)


def test_kmeans_init_makes_later_levels_shrink_the_residual():
    torch.manual_seed(0)
    q = ResidualQuantizer(levels=3, codebook_size=16, dim=8)
    z = torch.randn(200, 8)
    norms = q.train()(z).residual_norms.pow(2).mean(0)            # [L + 1]
    assert (norms[1:] < norms[:-1]).all()
    assert bool(q.initialized)


def test_trace_is_consistent_with_the_codes():
    torch.manual_seed(0)
    q = ResidualQuantizer(levels=3, codebook_size=8, dim=4)
    z = torch.randn(50, 4)
    q.train()(z)
    t = q.eval().trace(z)
    assert torch.equal(t["codes"], q(z).codes)
    assert (t["runner_up_dist"] >= t["dist"]).all() and (t["runner_up"] != t["codes"]).all()
    # the distance at level m is the squared norm of the residual left after level m
    assert torch.allclose(t["dist"], t["residual_norm"][:, 1:].pow(2), atol=1e-4)
    # rebuild the residuals from the codes alone
    residual = z.clone()
    for m in range(3):
        assert torch.allclose(residual.norm(dim=-1), t["residual_norm"][:, m], atol=1e-5)
        residual -= q.codebooks[m][t["codes"][:, m]].detach()
    assert torch.allclose(residual.norm(dim=-1), t["residual_norm"][:, 3], atol=1e-5)


def test_restart_reseeds_dead_codewords_only_in_training():
    torch.manual_seed(0)
    q = ResidualQuantizer(levels=1, codebook_size=4, dim=2, dead_after=1, kmeans_init=False)
    with torch.no_grad():
        q.codebooks.copy_(torch.tensor([[[0.0, 0.0], [1.0, 0.0], [50.0, 50.0], [60.0, 60.0]]]))
    z = torch.tensor([[0.1, 0.0], [0.9, 0.0], [1.1, 0.0]])
    before = q.codebooks.detach().clone()
    q.eval()(z)
    assert torch.equal(q.codebooks, before) and q.unused_steps.sum() == 0
    q.train()(z)
    after = q.codebooks.detach()[0]
    assert torch.equal(after[:2], before[0, :2])                  # used codewords untouched
    # the two far codewords were dead after one step; they now sit on points of the batch
    assert (torch.cdist(after[2:], z).min(1).values < 1e-6).all()
    assert q.unused_steps.tolist() == [[0, 0, 0, 0]]


def test_kmeans_finds_separated_clusters_and_handles_few_points():
    x = blobs(k=8, per=10, d=4)
    c = kmeans(x, 8, iters=10, generator=torch.Generator().manual_seed(0))
    assert torch.cdist(x, c).min(1).values.max() < 1.0            # every point near a centroid
    few = kmeans(x[:3], 8, generator=torch.Generator().manual_seed(0))
    assert few.shape == (8, 4) and torch.unique(few, dim=0).shape[0] == 8
    assert torch.cdist(x[:3], few).min(1).values.max() < 0.5      # each point kept as a centroid


def test_usage_and_perplexity_by_hand():
    codes = torch.tensor([[0, 1], [0, 2], [1, 3], [1, 3]])
    assert code_usage(codes, 4) == [0.5, 0.75]
    assert code_perplexity(codes, 4) == pytest.approx([2.0, math.exp(-(2 * 0.25 * math.log(0.25)
                                                                          + 0.5 * math.log(0.5)))])


def train_usage(*, kmeans_init: bool, restart_dead: bool, seed: int = 0, steps: int = 150) -> list[float]:
    torch.manual_seed(seed)
    x = blobs(seed)
    q = ResidualQuantizer(levels=1, codebook_size=64, dim=8, dead_after=20, kmeans_init=kmeans_init,
                          restart_dead=restart_dead)
    opt = torch.optim.Adam(q.parameters(), lr=0.01)
    for _ in range(steps):
        loss = q(x[torch.randint(len(x), (256,))]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    return q.eval().usage(q.encode(x))


@pytest.fixture(scope="module")
def plain_usage() -> float:
    return train_usage(kmeans_init=False, restart_dead=False)[0]


@pytest.mark.parametrize("kmeans_init,restart_dead", [(True, True), (True, False), (False, True)])
def test_init_and_restart_raise_codebook_usage(plain_usage, kmeans_init, restart_dead):
    # measured on 64 blobs: plain ~0.41-0.56, any of the health measures 1.0
    assert plain_usage < 0.7
    assert train_usage(kmeans_init=kmeans_init, restart_dead=restart_dead)[0] >= plain_usage + 0.3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_gpu():
    q = ResidualQuantizer(levels=2, codebook_size=8, dim=4, dead_after=1).cuda()
    z = torch.randn(32, 4, device="cuda")
    out = q(z)
    out.loss.backward()
    assert out.codes.device.type == "cuda"
    assert torch.allclose(q.eval().decode_codes(q.encode(z)), q(z).quantized, atol=1e-5)


def test_residuals_subtract_the_nearest_codeword_level_by_level():
    q = ResidualQuantizer(levels=2, codebook_size=2, dim=2)
    with torch.no_grad():
        q.codebooks.copy_(torch.tensor([[[1.0, 0.0], [0.0, 2.0]],     # level 1: item 0 -> word 0, item 1 -> word 1
                                        [[0.0, 1.0], [5.0, 5.0]]]))   # level 2 sees (0, 0) and (0, 1): word 0
    z = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    r1, r2 = q.residuals(z)
    torch.testing.assert_close(r1, z)
    torch.testing.assert_close(r2, torch.tensor([[0.0, 0.0], [0.0, 1.0]]))
    assert q.trace(z)["codes"].tolist() == [[0, 0], [1, 0]]


def test_capacity_assign_by_hand():
    dist = torch.tensor([[0.0, 1.0, 5.0],      # rows 0-2 all want column 0 of group 0, which takes two
                         [0.2, 3.0, 0.5],
                         [0.1, 0.4, 9.0],
                         [0.3, 2.0, 1.0]])     # row 3 is in group 1: its column 0 has room
    group = torch.tensor([0, 0, 0, 1])
    assert capacity_assign(dist, group, capacity=2).tolist() == [0, 2, 0, 0]   # row 1 is the farthest; 2 is its next
    assert capacity_assign(dist, group, capacity=3).tolist() == [0, 0, 0, 0]   # no pair full: plain nearest


def test_capacity_assign_leaves_an_over_full_group_on_its_nearest_columns():
    dist = torch.tensor([[0.0, 1.0], [0.1, 2.0], [0.2, 3.0]])
    out = capacity_assign(dist, torch.zeros(3, dtype=torch.long), capacity=1)
    assert out.tolist() == [0, 1, 0]            # two columns of room one: the third row stays on its nearest


def test_balanced_codes_separate_a_dense_cluster_that_nearest_codes_would_pile_up():
    gen = torch.Generator().manual_seed(0)
    books = torch.randn(3, 4, 2, generator=gen)                         # L = 3, K = 4: room for 64 items
    z = books[0, 1] + 0.01 * torch.randn(64, 2, generator=gen)          # all next to one first-level codeword
    codes = balanced_codes(z, books)
    assert len(torch.unique(codes, dim=0)) == 64                        # every item its own Rec-ID
    assert torch.bincount(codes[:, 0], minlength=4).max() <= 16         # no first code takes more than K^2
    spread = torch.randn(20, 2, generator=gen)                         # few items: nothing is full
    nearest = ResidualQuantizer(levels=3, codebook_size=4, dim=2)
    with torch.no_grad():
        nearest.codebooks.copy_(books)
    assert torch.equal(balanced_codes(spread, books)[:, :2], nearest.encode(spread)[:, :2])
