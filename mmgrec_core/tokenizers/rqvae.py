"""RQ-VAE: the encoder -> residual quantizer -> decoder block every learned tokenizer shares, and the plain
"RQ-VAE on raw features" tokenizer (the paper's "ID w/o", MGR-EF's early fusion: no graph, no CF signal)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..checks import check_positive
from ..data.dataset import InteractionData
from ..files import atomic_write_bytes
from ..quantize import ResidualQuantizer
from ..runtime import default_device, seed_everything
from ..training import Progress
from .base import Explainable, HasRepresentations, Persistable, Tokenizer


def mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Linear(d_hidden, d_out))


def modality_slices(data: InteractionData, names: list[str] | None = None) -> dict[str, slice]:
    """Column range of each modality inside `standardised_features(data, names)`."""
    out, start = {}, 0
    for name in names or list(data.features):
        out[name] = slice(start, start + data.features[name].shape[1])
        start += data.features[name].shape[1]
    return out


def without(x: torch.Tensor, item: int, columns: slice) -> torch.Tensor:
    """A copy of x with one item's columns set to the catalog mean (0 after standardisation)."""
    x = x.clone()
    x[item, columns] = 0.0
    return x


def standardised_features(data: InteractionData, names: list[str] | None = None) -> np.ndarray:
    """The chosen modalities (default: all), each z-scored per column, concatenated: float32 [I, sum d].

    Standardising puts a 384-d sentence embedding and a 19-d multi-hot on equal footing before any projection.
    """
    parts = []
    for name in names or list(data.features):
        x = data.features[name]
        std = x.std(0)
        parts.append(((x - x.mean(0)) / np.where(std > 0, std, 1.0)).astype(np.float32))
    return np.concatenate(parts, 1) if parts else np.zeros((data.num_items, 0), np.float32)


class RQVAE(nn.Module):
    """x [N, d_in] -> 2-layer MLP -> z [N, latent] -> residual quantization -> 2-layer MLP -> x_hat.

    Loss = ||x - x_hat||^2 summed over dimensions (averaging starves the codebooks, peers found) + RQ loss.
    """

    def __init__(self, *, input_dim: int, hidden_dim: int, latent_dim: int, levels: int, codebook_size: int):
        super().__init__()
        self.encoder = mlp(input_dim, hidden_dim, latent_dim)
        self.quantizer = ResidualQuantizer(levels=levels, codebook_size=codebook_size, dim=latent_dim)
        self.decoder = mlp(latent_dim, hidden_dim, input_dim)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        q = self.quantizer(self.encoder(x))
        return (x - self.decoder(q.quantized)).pow(2).sum(-1).mean() + q.loss

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Semantic codes int64 [N, M]."""
        return self.quantizer.encode(self.encoder(x))

    def train_step(self, x: torch.Tensor, opt: torch.optim.Optimizer, batch_size: int,
                   gen: torch.Generator) -> float:
        """One step on a random batch of the rows of x."""
        idx = torch.randint(len(x), (min(batch_size, len(x)),), generator=gen).to(x.device)
        loss = self.loss(x[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    def settle(self, x: torch.Tensor, opt: torch.optim.Optimizer, steps: int, batch_size: int,
               gen: torch.Generator) -> None:
        """Re-seed the codebooks by k-means on the latents of *all* rows, then train `steps` more.

        Codebooks learned while the encoder (or, in the Graph RQ-VAE, the GCN) was still moving describe latents
        that no longer exist; re-seeding on where the latents ended keeps every codeword in use.
        """
        with torch.no_grad():
            self.quantizer.init_codebooks(self.encoder(x), generator=torch.Generator(x.device).manual_seed(
                int(torch.randint(2**31, (1,), generator=gen))))
        self.train()
        for _ in range(steps):
            self.train_step(x, opt, batch_size, gen)
        self.eval()


@dataclass(frozen=True)
class RQVAEConfig:
    hidden_dim: int = 64
    latent_dim: int = 32
    levels: int = 3
    codebook_size: int = 128
    lr: float = 1e-3
    batch_size: int = 1024
    steps: int = 2000             # training steps before the codebooks are re-seeded
    polish_steps: int = 300       # steps after re-seeding

    def __post_init__(self):
        check_positive(self, "hidden_dim", "latent_dim", "levels", "codebook_size", "lr", "batch_size")
        check_positive(self, "steps", "polish_steps", allow_zero=True)

    @property
    def progress_reports(self) -> int | None:
        """Progress calls of one fit (every 100 steps; `settle`'s polish steps report none): the CLI bar's total."""
        return self.steps // 100 or None


def train_rqvae(x: torch.Tensor, config: RQVAEConfig, seed: int = 0, progress: Progress | None = None) -> RQVAE:
    """An RQ-VAE fitted to the rows of x [N, d]: `steps` steps, codebooks re-seeded on all latents, then
    `polish_steps` more (`RQVAE.settle`). The one fitting loop of every RQ-VAE on fixed inputs."""
    cfg = config
    seed_everything(seed)
    rq = RQVAE(input_dim=x.shape[1], hidden_dim=cfg.hidden_dim, latent_dim=cfg.latent_dim, levels=cfg.levels,
               codebook_size=cfg.codebook_size).to(x.device)
    opt = torch.optim.Adam(rq.parameters(), lr=cfg.lr, fused=True)
    gen = torch.Generator().manual_seed(seed)
    rq.train()
    for step in range(1, cfg.steps + 1):
        loss = rq.train_step(x, opt, cfg.batch_size, gen)
        if progress and step % 100 == 0:
            progress(step, {"rqvae": loss})
    rq.settle(x, opt, cfg.polish_steps, cfg.batch_size, gen)
    return rq


_SHARED_FITS: list[Path] = []          # the directory `shared_fits` set, innermost last


@contextlib.contextmanager
def shared_fits(directory: str | Path) -> Iterator[None]:
    """Within this block `modality_codes` keeps each fit's codes in `directory` and reads them back.

    A comparison fits the same per-modality RQ-VAEs (same features, options and seed) for late fusion, LF++ and
    the early-fusion AMI diagnostic; `compare` shares them between its runs and worker processes this way.
    """
    _SHARED_FITS.append(Path(directory))
    try:
        yield
    finally:
        _SHARED_FITS.pop()


def modality_codes(data: InteractionData, name: str, config: RQVAEConfig, seed: int,
                   progress: Progress | None = None) -> np.ndarray:
    """Codes int64 [I, L] of an RQ-VAE fitted to modality `name` alone (standardised), as late fusion's Rec-IDs
    and the early-fusion AMI diagnostic need them. Inside `shared_fits`, a fit with the same features, RQ-VAE
    options, seed and device is read back instead of repeated (it would give the same codes)."""
    features, device = standardised_features(data, [name]), default_device()
    path = None
    if _SHARED_FITS:                      # keyed on the host array: a cache hit moves nothing to the device
        options = {f.name: getattr(config, f.name) for f in dataclasses.fields(RQVAEConfig)}
        key = hashlib.sha256(repr((options, seed, device.type)).encode() + features.tobytes())
        path = _SHARED_FITS[-1] / f"rqvae-{key.hexdigest()[:32]}.npy"
        if path.exists():
            return np.load(path)
    x = torch.from_numpy(features).to(device)
    codes = train_rqvae(x, config, seed, progress).encode(x).cpu().numpy()
    if path is not None:
        buffer = io.BytesIO()
        np.save(buffer, codes)
        atomic_write_bytes(path, buffer.getvalue())
    return codes


class RQVAETokenizer(Tokenizer, Persistable, Explainable, HasRepresentations):
    """RQ-VAE on the concatenated, standardised raw modality features (`modalities`: a subset, default all)."""

    name = "rqvae"

    def __init__(self, config: RQVAEConfig = RQVAEConfig(), seed: int = 0, modalities: list[str] | None = None):
        self.config, self.seed, self.modalities = config, seed, modalities

    @property
    def vocab_size(self) -> int:
        return self.config.codebook_size

    def fit_codes(self, data: InteractionData, progress: Progress | None = None) -> np.ndarray:
        self._inputs(data)
        self.rqvae = train_rqvae(self.x, self.config, self.seed, progress)
        return self.encode(self.x).cpu().numpy()

    def _inputs(self, data: InteractionData) -> None:
        """Standardised features on the device (shared by `fit_codes` and `restore`)."""
        x = standardised_features(data, self.modalities)
        if x.shape[1] == 0:
            raise ValueError(f"{data.name} has no item features; the rqvae tokenizer needs at least one modality")
        self.x = torch.from_numpy(x).to(default_device())
        self.slices = modality_slices(data, self.modalities)
        self.data = data

    def state(self) -> dict[str, torch.Tensor]:
        return self.rqvae.state_dict()

    def restore(self, data: InteractionData, state: dict[str, torch.Tensor]) -> RQVAETokenizer:
        self._inputs(data)
        cfg = self.config
        self.rqvae = RQVAE(input_dim=self.x.shape[1], hidden_dim=cfg.hidden_dim, latent_dim=cfg.latent_dim,
                           levels=cfg.levels, codebook_size=cfg.codebook_size).to(self.x.device)
        self.rqvae.load_state_dict(state)
        self.rqvae.eval()
        return self

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes of (possibly modified) standardised features [N, d]."""
        return self.rqvae.encode(x)

    def representations(self) -> torch.Tensor:
        """The standardised features."""
        return self.x.cpu()

    # ---- explanations ------------------------------------------------------------------------------------

    @torch.no_grad()
    def trace(self, item: int) -> dict[str, torch.Tensor]:
        return self.rqvae.quantizer.trace(self.rqvae.encoder(self.x[item:item + 1]))

    @torch.no_grad()
    def ablations(self, item: int) -> dict[str, np.ndarray]:
        return {name: self.encode(without(self.x, item, cols)[item:item + 1])[0].cpu().numpy()
                for name, cols in self.slices.items()}

    @torch.no_grad()
    def quantizer_space(self) -> tuple[np.ndarray, np.ndarray]:
        return quantizer_space(self.rqvae, self.x)


def quantizer_space(rqvae: RQVAE, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(residuals [L, N, D] of the latents of x, codebooks [L, K, D]) as float32 arrays."""
    q = rqvae.quantizer
    return (q.residuals(rqvae.encoder(x)).float().cpu().numpy(), q.codebooks.detach().float().cpu().numpy())
