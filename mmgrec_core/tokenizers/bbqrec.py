"""BBQRec's tokenizer (Behavior-Bind multimodal Quantization, BBQRec §4.1): behaviour-aligned and
modality-specific latents per modality, pushed apart by CLUB, and one residual codebook stack shared by a
learned ID vector and every modality.

    z̄_m = Enc_mS(x_m);  z_m = Enc_mB(x_m)                 per modality m, standardised features (Eq. 2)
    L_MIM = Σ_m CLUB(z_m -> z̄_m)                           variational MI upper bound (Eq. 3)
    Z_i = {z_ID, z_m1, z_m2, ...}                           z_ID: a learned vector per item (Eq. 4)
    q_p = RQ(z_p), the SAME codebooks for every part p      nearest codeword, residual, sum (Eq. 5-7)
    x̂_m = Dec_m(q_m ⊕ z̄_m);  L_recon = Σ_m ||x_m - x̂_m||²  (Eq. 8-9)
    L_RQ-VAE = L_recon + Σ_p L_RQ^p,  commitment α = 0.25   straight-through estimator (Eq. 9)
    v_i = q_ID ⊕ q_m1 ⊕ ...;  L_Rec = in-batch softmax of cos(h_u, v)/τ, τ = 0.1 (Eq. 10-12)
    L = L_RQ-VAE + β L_Rec + γ L_MIM,  β = γ = 1 (the paper's)   (Eq. 13)

Codes: each part (ID first, then the modalities in `data.features` order) gives L codes of the shared
codebooks; the semantic ID concatenates them, [I, L x (1 + M)], all in [0, K). `representations()` is v_i.

Departures from the paper (figures: `demo`, seed 0, validation Recall@20 of recommending by the cosine between
the mean v of a user's training items and each item's v):
- §4.1.3, Eq. 11: the sequence encoder (SASRec / SRGNN) over the previous items becomes a set encoder, since this
  library treats a user's training items as an unordered set and never puts a target in the input. Each step
  samples `user_batch` users with at least two training items, holds out one item of each as the target, and
  encodes the rest as the mean of their v_i followed by a linear layer (mean pooling, no attention) that starts
  at the identity, so that v itself, not only the layer, learns the similarity that BBQRec's attention reads
  (Eq. 14). Only training interactions are used. Eq. 12's negatives are the batch's *distinct* targets, so a
  popular item that two users share is not its own negative.
- Eq. 3: q_θ(z̄ | z) is a diagonal Gaussian with mean and log-variance from 2-layer MLPs on z (the log-variance
  net ends in tanh, as in CLUB's reference code), one per modality, fitted by its own Adam (same lr) on the
  log-likelihood of the positive pairs with detached inputs: a main step, then an estimator step on the same
  latents (CLUB's alternation). Both latents enter CLUB standardised over the batch (`batch_standardise`): an
  invertible per-dimension map leaves the mutual information unchanged, and without it the encoders drove the
  estimate to -1.5e3 within 300 steps (250-item world) by inflating their scale faster than q_θ followed. The
  negative term averages over all pairs of the step's items in closed form, O(N D) instead of O(N² D).
- §4.1.2: every part's latent (z_ID and each z_m) is L2-normalised before the shared quantizer. The paper gives
  no scale; without it the randomly initialised z_ID sat near the origin and its codes collapsed onto a few
  codewords of the shared stack (4% distinct ID prefixes on a 250-item world). z_ID has its own learning rate
  (`id_lr`, 1e-2): a free table taught by L_Rec alone barely moves at 1e-3 in 1,500 steps.
- §4.1.2: the quantizer is the library's `ResidualQuantizer`: the shared codebooks are k-means initialised on the
  first step's latents of all parts and unused codewords are re-seeded (`quantize.py`); after `steps` they are
  re-seeded by k-means on all items' latents of all parts and the whole loss runs `polish_steps` more (as
  `rqvae.train_rqvae` does against collapse). The paper specifies neither.
- Eq. 9 and 13: L_recon and each part's L_RQ are summed over dimensions (as Eq. 9 writes them, and the library's
  convention) and averaged over items; Eq. 9 sums L_RQ over the parts. At that scale L_recon (~20 on demo, 144
  feature dimensions) swamps L_Rec (~4): with the paper's β = 1 the kNN on v reaches 0.058, at β = 20 0.135, at
  β = 50 0.151 (β = 0: 0.011; the same kNN on the standardised raw features: 0.148). `rec_weight` keeps the
  paper's β = 1 as its default, so that `bbqrec` is the paper's system; `--set tokenizer.rec_weight=50` is the
  setting that worked here. γ stays 1; CLUB's estimate ends at 3.1 (β = 50) and 1.1 (β = 1), against 40-115 without it
  (γ = 0, 600 steps).
- Unspecified in the paper, chosen here: encoders, decoders and q_θ are 2-layer MLPs of width `hidden_dim`; z_ID
  starts N(0, 0.1²); each step's items are `batch_size` random items plus those of the step's users, and
  L_RQ-VAE and L_MIM average over them.
- Codes are plain nearest codewords (Eq. 5), not balanced: the collision token of `RecIDTable` makes IDs unique.
  Items without training interactions keep their random z_ID (only L_RQ moves it), so their ID codes carry no
  behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_positive
from ..data.dataset import InteractionData
from ..quantize import ResidualQuantizer
from ..runtime import default_device, seed_everything
from ..training import Progress
from .base import HasRepresentations, Persistable, Tokenizer
from .rqvae import RQVAEConfig, mlp, modality_slices, standardised_features

ID_INIT_STD = 0.1        # z_ID's initial scale (it is L2-normalised before use; with `id_lr` it sets the pace)
ENCODE_CHUNK = 65_536    # items per block when coding the whole catalogue (bounds the [N, K] distances)


@dataclass(frozen=True)
class BBQRecConfig(RQVAEConfig):
    batch_size: int = 512         # random items per step for L_RQ-VAE and L_MIM; the user batch's items join them
    user_batch: int = 128         # users per step for the set-to-item contrastive loss (~1,200 items/step on demo)
    steps: int = 1500
    id_lr: float = 1e-2           # Adam lr of the z_ID table: learnt from L_Rec alone, at `lr` it barely moves
    commitment: float = 0.25      # α, Eq. 9
    rec_weight: float = 1.0       # β, Eq. 13 (the paper's; 50 did better on demo: module docstring)
    mim_weight: float = 1.0       # γ, Eq. 13
    temperature: float = 0.1      # τ, Eq. 12

    def __post_init__(self):
        super().__post_init__()
        check_positive(self, "user_batch", "temperature", "id_lr")
        check_positive(self, "commitment", "rec_weight", "mim_weight", allow_zero=True)

    @property
    def progress_reports(self) -> int | None:
        """Progress calls of one fit: every 100 steps, the polish steps included."""
        return (self.steps + self.polish_steps) // 100 or None


# ---- pure pieces ---------------------------------------------------------------------------------------------

def club_upper_bound(mu: Tensor, logvar: Tensor, target: Tensor) -> Tensor:
    """CLUB (Cheng et al., ICML 2020; BBQRec Eq. 3): mean_i [log q(y_i | x_i) - mean_j log q(y_j | x_i)].

    q(. | x_i) = N(mu_i, exp(logvar_i)) diagonal; mu, logvar, target y: [N, D]. The log-variance and 2π terms are
    the same in both halves for a given i and cancel, so only the squared errors remain. mean_j (y_j - mu_i)² is
    E[y²] - 2 mu_i E[y] + mu_i², so the N x N pairs cost O(N D).
    """
    inv_var = torch.exp(-logvar)                                                   # [N, D]
    positive = -0.5 * ((target - mu).pow(2) * inv_var).sum(-1)                     # [N]
    pair_sq = target.pow(2).mean(0) - 2 * mu * target.mean(0) + mu.pow(2)          # [N, D] mean_j (y_j - mu_i)²
    negative = -0.5 * (pair_sq * inv_var).sum(-1)                                  # [N]
    return (positive - negative).mean()


def gaussian_nll(mu: Tensor, logvar: Tensor, target: Tensor) -> Tensor:
    """-mean_i log N(target_i; mu_i, exp(logvar_i)) without the 2π constant: CLUB's estimator loss; [N, D] each."""
    return 0.5 * ((target - mu).pow(2) * torch.exp(-logvar) + logvar).sum(-1).mean()


def batch_standardise(x: Tensor, eps: float = 1e-5) -> Tensor:
    """Each column of x [N, D] to zero mean, unit variance over the batch (gradients flow through the statistics).

    A per-dimension affine map is invertible, so it leaves I(z; z̄) unchanged, but the encoders can no longer
    shrink CLUB's estimate by inflating their outputs' scale faster than q_θ follows (they did, without bound).
    """
    return (x - x.mean(0)) / (x.std(0) + eps)


def leave_one_out(indptr: Tensor, indices: Tensor, users: Tensor, generator: torch.Generator
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """Hold out one random training item per user; the rest are the user's input set.

    indptr int64 [U + 1], indices int64 [nnz] (user -> items CSR); users [B], each with >= 2 items. Returns
    (rows [P], items [P]) of the input pairs (row = position in `users`) and targets [B]; no target is an input.
    """
    start, deg = indptr[users], indptr[users + 1] - indptr[users]                 # [B]
    pick = start + (torch.rand(len(users), generator=generator) * deg).long().clamp_max(deg - 1)
    rows = torch.repeat_interleave(torch.arange(len(users)), deg)                  # [sum deg]
    pos = torch.repeat_interleave(start - torch.cumsum(deg, 0) + deg, deg) + torch.arange(len(rows))
    keep = pos != pick[rows]
    return rows[keep], indices[pos[keep]], indices[pick]


# ---- the model -----------------------------------------------------------------------------------------------

class BBQRec(nn.Module):
    """Per-modality specific / behaviour encoders, decoders and CLUB nets, a learned ID table, one quantizer.

    Parts p = 0 (ID), 1..M (modalities in order) share `quantizer`; latent D = `latent_dim`.
    """

    def __init__(self, *, input_dims: list[int], num_items: int, config: BBQRecConfig):
        super().__init__()
        h, d = config.hidden_dim, config.latent_dim
        self.parts = 1 + len(input_dims)
        self.specific = nn.ModuleList(mlp(n, h, d) for n in input_dims)             # Enc_mS
        self.behaviour = nn.ModuleList(mlp(n, h, d) for n in input_dims)            # Enc_mB
        self.decoders = nn.ModuleList(mlp(2 * d, h, n) for n in input_dims)         # Dec_m on q_m ⊕ z̄_m
        self.club_mu = nn.ModuleList(mlp(d, h, d) for _ in input_dims)              # q_θ(z̄ | z): mean
        self.club_logvar = nn.ModuleList(nn.Sequential(mlp(d, h, d), nn.Tanh()) for _ in input_dims)
        self.item_id = nn.Parameter(ID_INIT_STD * torch.randn(num_items, d))        # z_ID [I, D]
        self.user_proj = nn.Linear(self.parts * d, self.parts * d)                  # after mean pooling, Eq. 11
        nn.init.eye_(self.user_proj.weight)          # h starts as the plain mean, so v itself must carry similarity
        nn.init.zeros_(self.user_proj.bias)
        self.quantizer = ResidualQuantizer(levels=config.levels, codebook_size=config.codebook_size, dim=d,
                                           beta=config.commitment)

    def club_parameters(self) -> list[nn.Parameter]:
        return [*self.club_mu.parameters(), *self.club_logvar.parameters()]

    def main_parameters(self) -> list[nn.Parameter]:
        """Everything but q_θ and the ID table (they have optimizer settings of their own)."""
        own = {id(p) for p in self.club_parameters()} | {id(self.item_id)}
        return [p for p in self.parameters() if id(p) not in own]

    def latents(self, xs: list[Tensor], items: Tensor) -> tuple[Tensor, list[Tensor]]:
        """(Z [P, N, D]: z_ID then each z_m, unit rows; [z̄_m [N, D] per modality]) of `items` [N]; xs[m]: [N, d_m].

        Unit rows put every part on one scale for the one codebook stack (see the module docstring).
        """
        z = [self.item_id[items]] + [enc(x) for enc, x in zip(self.behaviour, xs, strict=True)]
        return F.normalize(torch.stack(z), dim=-1), [enc(x) for enc, x in zip(self.specific, xs, strict=True)]

    def quantize(self, z: Tensor):
        """All parts z [P, N, D] through the one quantizer; quantized [P, N, D] (straight-through), the output."""
        out = self.quantizer(z.reshape(-1, z.shape[-1]))
        return out.quantized.view(z.shape), out

    def _club_pairs(self, z: Tensor, zbar: list[Tensor]):
        """Per modality (mean net, log-variance net, z_m, z̄_m), both latents standardised over the batch."""
        for m, (mu, logvar) in enumerate(zip(self.club_mu, self.club_logvar, strict=True)):
            yield mu, logvar, batch_standardise(z[1 + m]), batch_standardise(zbar[m])

    def club_fit_loss(self, z: Tensor, zbar: list[Tensor]) -> Tensor:
        """q_θ's own loss on detached pairs: Σ_m -log q_θ(z̄_m | z_m)."""
        return sum(gaussian_nll(mu(x.detach()), logvar(x.detach()), y.detach())
                   for mu, logvar, x, y in self._club_pairs(z, zbar))

    def mim(self, z: Tensor, zbar: list[Tensor]) -> Tensor:
        """L_MIM, Eq. 3: Σ_m CLUB(z_m -> z̄_m)."""
        return sum(club_upper_bound(mu(x), logvar(x), y) for mu, logvar, x, y in self._club_pairs(z, zbar))

    def losses(self, xs: list[Tensor], z: Tensor, zbar: list[Tensor], items: Tensor, rows: Tensor, inputs: Tensor,
               targets: Tensor, temperature: float) -> dict[str, Tensor]:
        """Every term of Eq. 13 on the step's items [N] (sorted, unique): features xs[m] [N, d_m], latents
        (z [P, N, D], z̄_m [N, D]) from `latents`.

        rows / inputs [P'] are the users' input pairs and targets [B] their held-out items, all ids in `items`.
        """
        q, out = self.quantize(z)                                                   # [P, N, D]
        recon = sum((x - dec(torch.cat([q[1 + m], zbar[m]], -1))).pow(2).sum(-1).mean()
                    for m, (x, dec) in enumerate(zip(xs, self.decoders, strict=True)))
        losses = {"recon": recon, "rq": self.parts * out.loss, "mim": self.mim(z, zbar)}
        if len(targets):
            v = q.permute(1, 0, 2).reshape(len(items), -1)                          # v_i [N, P x D], Eq. 10
            pooled = torch.zeros(len(targets), v.shape[1], device=v.device).index_add_(
                0, rows, v[torch.searchsorted(items, inputs)])
            pooled = pooled / torch.bincount(rows, minlength=len(targets)).clamp_min(1)[:, None].to(v.dtype)
            h = F.normalize(self.user_proj(pooled), dim=-1)                         # h_u [B, P x D], Eq. 11
            cand, label = torch.unique(targets, return_inverse=True)                # the batch's distinct targets
            logits = h @ F.normalize(v[torch.searchsorted(items, cand)], dim=-1).t() / temperature  # [B, T]
            losses["rec"] = F.cross_entropy(logits, label)
        else:
            losses["rec"] = recon.new_zeros(())
        return losses


# ---- the tokenizer -------------------------------------------------------------------------------------------

class BBQRecTokenizer(Tokenizer, Persistable, HasRepresentations):
    """BBQRec §4.1: codes [I, L x (1 + M)] of the ID and each modality from one shared codebook stack."""

    name = "bbqrec"

    def __init__(self, config: BBQRecConfig | None = None, seed: int = 0):
        self.config, self.seed = config or BBQRecConfig(), seed

    @property
    def vocab_size(self) -> int:
        return self.config.codebook_size

    def fit_codes(self, data: InteractionData, progress: Progress | None = None) -> np.ndarray:
        cfg = self.config
        self._inputs(data)
        seed_everything(self.seed)
        self.model = self._build(data)
        gen = torch.Generator().manual_seed(self.seed)
        opt = torch.optim.Adam([{"params": self.model.main_parameters()},
                                {"params": [self.model.item_id], "lr": cfg.id_lr}], lr=cfg.lr, fused=True)
        club_opt = torch.optim.Adam(self.model.club_parameters(), lr=cfg.lr, fused=True)
        m = data.matrix("train")
        indptr, indices = torch.from_numpy(m.indptr.astype(np.int64)), torch.from_numpy(m.indices.astype(np.int64))
        eligible = torch.from_numpy(np.flatnonzero(np.diff(m.indptr) >= 2))        # users who can hold one out
        self.model.train()
        for step in range(1, cfg.steps + cfg.polish_steps + 1):
            if step == cfg.steps + 1:
                self._reseed_codebooks(gen)
            info = self._step(opt, club_opt, indptr, indices, eligible, gen)
            if progress and step % 100 == 0:
                progress(step, info)
        self.model.eval()
        self._encode_all()
        return self.codes.cpu().numpy()

    def _step(self, opt: torch.optim.Optimizer, club_opt: torch.optim.Optimizer, indptr: Tensor,
              indices: Tensor, eligible: Tensor, gen: torch.Generator) -> dict[str, float]:
        """One step of Eq. 13, then one of CLUB's estimator on the same (detached) latents; the terms as floats."""
        cfg, dev = self.config, self.x.device
        users = eligible[torch.randperm(len(eligible), generator=gen)[:cfg.user_batch]]
        rows, inputs, targets = leave_one_out(indptr, indices, users, gen)
        rand = torch.randint(self.num_items, (min(cfg.batch_size, self.num_items),), generator=gen)
        items = torch.unique(torch.cat([rand, inputs, targets])).to(dev)            # sorted [N]
        rows, inputs, targets = rows.to(dev), inputs.to(dev), targets.to(dev)
        xs = [self.x[items, s] for s in self.slices.values()]

        z, zbar = self.model.latents(xs, items)
        terms = self.model.losses(xs, z, zbar, items, rows, inputs, targets, cfg.temperature)
        loss = terms["recon"] + terms["rq"] + cfg.rec_weight * terms["rec"] + cfg.mim_weight * terms["mim"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        club_opt.zero_grad()                  # drops what the main loss left on q_θ: it must not minimise its own fit
        self.model.club_fit_loss(z, zbar).backward()
        club_opt.step()
        return {"loss": loss.item(), **{k: v.item() for k, v in terms.items()}}

    @torch.no_grad()
    def _reseed_codebooks(self, gen: torch.Generator) -> None:
        """k-means the shared codebooks on the latents of all items' parts [P x I, D] (see module docstring)."""
        z = self.latents()
        seed = int(torch.randint(2**31, (1,), generator=gen))
        self.model.quantizer.init_codebooks(z.reshape(-1, z.shape[-1]),
                                            generator=torch.Generator(z.device).manual_seed(seed))

    @torch.no_grad()
    def latents(self) -> Tensor:
        """Z [P, I, D]: z_ID, then z_m per modality, of every item (what the shared codebooks quantize)."""
        blocks = []
        for chunk in _chunks(self.num_items):
            items = torch.arange(chunk.start, chunk.stop, device=self.x.device)
            blocks.append(self.model.latents([self.x[items, cols] for cols in self.slices.values()], items)[0])
        return torch.cat(blocks, 1)

    @torch.no_grad()
    def _encode_all(self) -> None:
        """codes int64 [I, P x L] (part-major: ID's L codes, then each modality's) and v float32 [I, P x D]."""
        quantizer = self.model.quantizer
        z = self.latents()                                                     # [P, I, D]
        p, n, d = z.shape
        codes = torch.cat([quantizer.encode(z[:, s].reshape(-1, d)).view(p, -1, quantizer.levels)
                           for s in _chunks(n)], 1)                                 # [P, I, L]
        v = quantizer.decode_codes(codes.reshape(-1, quantizer.levels)).view(p, n, d)
        self.codes = codes.permute(1, 0, 2).reshape(n, -1)
        self.v = v.permute(1, 0, 2).reshape(n, -1).float()

    def _inputs(self, data: InteractionData) -> None:
        """Standardised features on the device and each modality's columns (shared by `fit_codes`, `restore`)."""
        if not data.features:
            raise ValueError(f"{data.name} has no item features; the bbqrec tokenizer needs at least one modality")
        self.x = torch.from_numpy(standardised_features(data)).to(default_device())  # [I, sum d_m]
        self.slices = modality_slices(data)
        self.num_items = data.num_items

    def _build(self, data: InteractionData) -> BBQRec:
        dims = [s.stop - s.start for s in self.slices.values()]
        return BBQRec(input_dims=dims, num_items=data.num_items, config=self.config).to(self.x.device)

    def state(self) -> dict[str, Tensor]:
        return {k: v.detach().contiguous() for k, v in self.model.state_dict().items()}

    def restore(self, data: InteractionData, state: dict[str, Tensor]) -> BBQRecTokenizer:
        self._inputs(data)
        self.model = self._build(data)
        self.model.load_state_dict(state)
        self.model.eval()
        self._encode_all()
        return self

    def representations(self) -> Tensor:
        """v_i = q_ID ⊕ q_m1 ⊕ ... float32 [I, (1 + M) x D] (Eq. 10): the generator's item vectors."""
        return self.v.cpu()


def _chunks(n: int) -> list[slice]:
    return [slice(s, min(s + ENCODE_CHUNK, n)) for s in range(0, n, ENCODE_CHUNK)]
