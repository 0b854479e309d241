"""Graph RQ-VAE (MMGRec §4.2): multimodal features + collaborative signal -> a GCN -> residual quantization.

    h_i^(0) = [ concat(f_v, f_a, f_t) W  ;  h_i^c ]           item input, 2D (modalities projected, CF learned)
    h_u^(0) = learned, 2D
    h^(y)   = LeakyReLU(h^(y-1) W1 + mean_nbrs h^(y-1) W2)     GraphSAGE-mean on the *training* graph; last -> D
    z_i     = Enc(h_i);  z_hat = RQ(z_i);  h_hat = Dec(z + sg(z_hat - z))
    L       = L_bpr(h_u . h_i)  +  ||h - h_hat||^2 + RQ loss   optimised alternately, one step each

Decisions where the paper is loose (MMGREC.md §2, §6): modalities are standardised per column before the
projection, so a 384-d text embedding and a 19-d multi-hot start on equal footing; the RQ-VAE step sees h
detached, so tokenization follows the collaborative representation instead of bending it towards what is easy to
reconstruct; the reconstruction loss is summed over dimensions (peers found averaging starves the codebooks);
after training, the codebooks are re-seeded by k-means on the final latents of *all* items and the RQ-VAE keeps
learning for `polish_steps` on the final h: codebooks fitted while the GCN was still moving would describe a
representation that no longer exists (with few epochs, most codewords end up dead).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch_geometric.nn import SAGEConv

from ..checks import check_positive
from ..data.dataset import InteractionData
from ..data.sampling import bpr_triples
from ..graph import bipartite_adj_t
from ..runtime import default_device, seed_everything
from ..training import Progress, bpr_loss
from .base import Explainable, HasRepresentations, Persistable, Tokenizer
from .rqvae import RQVAE, modality_slices, quantizer_space, standardised_features, without


@dataclass(frozen=True)
class GraphRQVAEConfig:
    dim: int = 64                 # D: GCN output, item representation h_i
    latent_dim: int = 32          # RQ-VAE latent (peers: 32+ avoids collapse)
    levels: int = 3               # M semantic tokens c1..cM
    codebook_size: int = 128      # L codewords per level
    gcn_layers: int = 2
    lr: float = 1e-3
    reg: float = 1e-4             # L2 on the batch's input embeddings in the BPR step
    batch_size: int = 2048        # BPR triples per step
    rq_batch_size: int = 1024     # items per RQ-VAE step
    epochs: int = 30
    polish_steps: int = 300       # RQ-VAE-only steps on the final representation

    def __post_init__(self):
        check_positive(self, "dim", "latent_dim", "levels", "codebook_size", "gcn_layers", "lr", "batch_size",
                       "rq_batch_size")
        check_positive(self, "reg", "epochs", "polish_steps", allow_zero=True)


class GraphRQVAE(nn.Module):
    """The network: modality projection + CF embeddings, GraphSAGE encoder, RQ-VAE over item representations."""

    def __init__(self, config: GraphRQVAEConfig, num_users: int, num_items: int, feature_dim: int):
        super().__init__()
        d = config.dim
        self.config, self.num_users, self.num_items = config, num_users, num_items
        self.modal = nn.Linear(feature_dim, d) if feature_dim else None
        self.item_cf = nn.Embedding(num_items, d if feature_dim else 2 * d)
        self.user = nn.Embedding(num_users, 2 * d)
        for emb in (self.item_cf, self.user):
            nn.init.normal_(emb.weight, std=0.1)
        dims = [2 * d] * config.gcn_layers + [d]
        self.convs = nn.ModuleList(SAGEConv(a, b, aggr="mean") for a, b in zip(dims[:-1], dims[1:]))
        self.rqvae = RQVAE(input_dim=d, hidden_dim=d, latent_dim=config.latent_dim, levels=config.levels,
                           codebook_size=config.codebook_size)

    def item_input(self, features: torch.Tensor | None, cf: torch.Tensor | None = None) -> torch.Tensor:
        """h_i^(0) [I, 2D]; `cf` overrides the CF part (explanations replace it by its mean)."""
        cf = self.item_cf.weight if cf is None else cf
        return cf if self.modal is None else torch.cat([self.modal(features), cf], 1)

    def propagate(self, items_in: torch.Tensor, adj_t: torch.Tensor) -> torch.Tensor:
        """h [U + I, D] from the input item representations [I, 2D]."""
        h = torch.cat([self.user.weight, items_in], 0)
        for conv in self.convs:
            h = nn.functional.leaky_relu(conv(h, adj_t))
        return h


class GraphRQVAETokenizer(Tokenizer, Persistable, Explainable, HasRepresentations):
    """Codes of the GCN's item representations; `trace` and `ablations` explain an item's codes."""

    name = "graph_rqvae"

    def __init__(self, config: GraphRQVAEConfig = GraphRQVAEConfig(), seed: int = 0):
        self.config, self.seed = config, seed

    @property
    def vocab_size(self) -> int:
        return self.config.codebook_size

    def fit_codes(self, data: InteractionData, progress: Progress | None = None) -> np.ndarray:
        cfg = self.config
        seed_everything(self.seed)
        model = self._setup(data)
        device = self.device
        gcn_params = [p for n, p in model.named_parameters() if not n.startswith("rqvae.")]
        opt_gcn = torch.optim.Adam(gcn_params, lr=cfg.lr)
        opt_rq = torch.optim.Adam(model.rqvae.parameters(), lr=cfg.lr)
        rng = np.random.default_rng(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        model.train()
        for epoch in range(1, cfg.epochs + 1):
            users, pos, neg = (torch.from_numpy(a).to(device) for a in bpr_triples(data, rng))
            bpr_total = rq_total = 0.0
            steps = 0
            for s in range(0, len(users), cfg.batch_size):
                u, i, j = (t[s:s + cfg.batch_size] for t in (users, pos, neg))
                h = model.propagate(model.item_input(self.features), self.adj_t)          # [U + I, D]
                ego = (model.user.weight[u], model.item_cf.weight[i], model.item_cf.weight[j])
                n_u = data.num_users
                bpr = bpr_loss(h[u], h[i + n_u], h[j + n_u], ego, cfg.reg)
                opt_gcn.zero_grad()
                bpr.backward()
                opt_gcn.step()
                rq = model.rqvae.train_step(h.detach()[data.num_users:], opt_rq, cfg.rq_batch_size, gen)
                bpr_total, rq_total, steps = bpr_total + bpr.item(), rq_total + rq, steps + 1
            if progress:
                progress(epoch, {"bpr": bpr_total / steps, "rqvae": rq_total / steps})
        model.eval()
        self.h_items = self.item_representations()
        model.rqvae.settle(self.h_items, opt_rq, cfg.polish_steps, cfg.rq_batch_size, gen)
        return self.encode(self.h_items).cpu().numpy()

    def _setup(self, data: InteractionData) -> GraphRQVAE:
        """Inputs on the device and an untrained network: shared by `fit` and `restore`."""
        self.device = device = default_device()
        x = standardised_features(data)
        self.features = torch.from_numpy(x).to(device) if x.shape[1] else None
        self.slices = modality_slices(data)
        self.adj_t = bipartite_adj_t(data).to(device)
        self.model = GraphRQVAE(self.config, data.num_users, data.num_items, x.shape[1]).to(device)
        return self.model

    def state(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def restore(self, data: InteractionData, state: dict[str, torch.Tensor]) -> GraphRQVAETokenizer:
        self._setup(data).load_state_dict(state)
        self.model.eval()
        self.h_items = self.item_representations()
        return self

    @torch.no_grad()
    def representations(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(h_u [U, D], h_i [I, D]): what the generator embeds histories and users with."""
        m = self.model
        h = m.propagate(m.item_input(self.features), self.adj_t)
        return h[:m.num_users], h[m.num_users:]

    @torch.no_grad()
    def item_representations(self, features: torch.Tensor | None = None, cf: torch.Tensor | None = None
                             ) -> torch.Tensor:
        """h_i [I, D] for the given (possibly modified) inputs; defaults to the fitted ones."""
        m = self.model
        inp = m.item_input(self.features if features is None else features, cf)
        return m.propagate(inp, self.adj_t)[m.num_users:]

    @torch.no_grad()
    def encode(self, h_items: torch.Tensor) -> torch.Tensor:
        """Semantic codes int64 [I, M] of item representations [I, D]."""
        return self.model.rqvae.encode(h_items)

    # ---- explanations ------------------------------------------------------------------------------------

    @torch.no_grad()
    def trace(self, item: int) -> dict[str, torch.Tensor]:
        return self.model.rqvae.quantizer.trace(self.model.rqvae.encoder(self.h_items[item:item + 1]))

    @torch.no_grad()
    def quantizer_space(self) -> tuple[np.ndarray, np.ndarray]:
        return quantizer_space(self.model.rqvae, self.h_items)

    @torch.no_grad()
    def ablations(self, item: int) -> dict[str, np.ndarray]:
        """The item's semantic codes with each modality, and then its CF embedding, replaced by the catalog mean.

        The whole graph is propagated again because the item's input reaches its own representation also
        through its neighbours (two hops); on the demo world that is a few milliseconds.
        """
        out = {name: self.item_representations(features=without(self.features, item, cols))[item:item + 1]
               for name, cols in self.slices.items()}
        cf = self.model.item_cf.weight.clone()
        cf[item] = cf.mean(0)
        out["cf"] = self.item_representations(cf=cf)[item:item + 1]
        return {name: self.encode(h)[0].cpu().numpy() for name, h in out.items()}
