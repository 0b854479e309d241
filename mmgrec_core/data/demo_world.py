"""The demo world: a generated, licence-free catalog whose structure we know, so Rec-IDs can be checked against it.

Every item has a planted category, subcategory (12 x 8, readable names), style and hidden co-consumption cluster.
Three modalities look at that latent structure with different emphasis, so no single one suffices:

* `textual`  (48-d) carries the category strongly and the subcategory weakly;
* `visual`   (64-d) carries the subcategory and the style, the category only through them;
* `acoustic` (32-d) is weak: a faint category signal under heavy noise.

Users prefer a few subcategories (mostly inside one category) and also belong to a co-consumption cluster that no
modality shows, so collaborative signal matters. Item popularity is Zipf-like. All sampling is vectorised, so a
million items take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..arrays import group_ranks
from .dataset import DatasetError, InteractionData
from .split import leave_last_out, random_split

TAXONOMY: dict[str, list[str]] = {
    "Cooking": ["Baking", "Grilling", "Vegan", "Pasta", "Desserts", "Breakfast", "Street Food", "Preserves"],
    "Music": ["Jazz", "Rock", "Classical", "Hip-Hop", "Folk", "Electronic", "Blues", "Soul"],
    "Travel": ["Beaches", "Mountains", "City Breaks", "Road Trips", "Islands", "Deserts", "Rail Journeys", "Camping"],
    "Sports": ["Football", "Tennis", "Cycling", "Running", "Swimming", "Climbing", "Basketball", "Skiing"],
    "Science": ["Astronomy", "Biology", "Chemistry", "Physics", "Geology", "Ecology", "Robotics", "Mathematics"],
    "Gaming": ["Strategy", "Platformers", "Puzzles", "Racing", "RPG", "Shooters", "Simulation", "Retro"],
    "Fashion": ["Streetwear", "Vintage", "Sneakers", "Accessories", "Tailoring", "Knitwear", "Jewellery", "Eyewear"],
    "Home": ["Gardening", "Woodwork", "Interiors", "Plants", "Lighting", "Ceramics", "Textiles", "Tools"],
    "Pets": ["Dogs", "Cats", "Birds", "Aquariums", "Reptiles", "Horses", "Rabbits", "Training"],
    "Comedy": ["Stand-up", "Sketches", "Satire", "Pranks", "Improv", "Parody", "Sitcoms", "Cartoons"],
    "Fitness": ["Yoga", "Pilates", "Weights", "HIIT", "Stretching", "Boxing", "Dance", "Meditation"],
    "Art": ["Painting", "Drawing", "Sculpture", "Photography", "Calligraphy", "Animation", "Printmaking", "Origami"],
}
STYLES = ["Classic", "Modern", "Minimal", "Bold", "Cosy", "Retro", "Wild", "Elegant"]
MODALITIES = ("visual", "acoustic", "textual")
MAX_SIZE = 2_000_000                  # items or users: beyond this a laptop runs out of memory


@dataclass(frozen=True)
class DemoConfig:
    items: int = 2000                 # catalog size
    users: int = 3000
    interactions_per_user: float = 20.0  # mean; per-user counts are min_interactions + geometric
    min_interactions: int = 5         # fewest interactions a user has (before the split)
    clusters: int = 24                # hidden co-consumption clusters (no modality shows them)
    zipf: float = 1.0                 # popularity exponent: weight of the r-th most popular item ~ r^-zipf
    taste_share: float = 0.6          # share of a user's draws from their preferred subcategories
    cluster_share: float = 0.3        # ... from their hidden cluster; the rest follow global popularity
    noise: float = 1.0                # scale of the per-item noise in every modality
    seed: int = 0
    split: str = "random"             # "random" (per-user 80/10/10) or "last" (leave-last-out by time)
    modalities: str = "visual,acoustic,textual"   # which modalities the dataset keeps (all are generated)

    def __post_init__(self):
        for name, low, high in (("items", 2, MAX_SIZE), ("users", 1, MAX_SIZE), ("clusters", 1, 100_000),
                                ("min_interactions", 1, 1000), ("seed", 0, 2**31 - 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or not low <= value <= high:
                raise DatasetError(f"demo world: {name}={value!r} must be an integer in [{low}, {high}]")
        for name, low, high in (("interactions_per_user", 1.0, 10_000.0), ("zipf", 0.0, 10.0),
                                ("taste_share", 0.0, 1.0), ("cluster_share", 0.0, 1.0), ("noise", 0.0, 100.0)):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not low <= value <= high:      # NaN fails both
                raise DatasetError(f"demo world: {name}={value!r} must be a number in [{low}, {high}]")
        if self.taste_share + self.cluster_share > 1:
            raise DatasetError(f"demo world: taste_share + cluster_share = {self.taste_share + self.cluster_share}"
                               f" must be at most 1")
        if self.split not in ("random", "last"):
            raise DatasetError(f"demo world: split={self.split!r}; use split=random or split=last")
        unknown = set(self.modality_names) - set(MODALITIES)
        if unknown or not self.modality_names:
            raise DatasetError(f"demo world: modalities={self.modalities!r}; choose from {', '.join(MODALITIES)} "
                               f"(comma-separated, with '+' in a spec: modalities=visual+acoustic)")

    @property
    def modality_names(self) -> list[str]:
        return [m for m in self.modalities.replace("+", ",").split(",") if m]


# A world that behaves like short-video data (MMRec's TikTok): a median of 2-3 training items per user, a long
# tail with cold items, and only two modalities, the informative one noisier. `demo:preset=sparse`.
PRESETS = {"sparse": dict(items=8000, users=10000, interactions_per_user=4.0, min_interactions=2,
                          modalities="visual,acoustic", noise=1.5)}


def generate(config: DemoConfig = DemoConfig()) -> InteractionData:
    """Generate the demo world as a validated `InteractionData`."""
    cfg = config
    rng = np.random.default_rng(cfg.seed)
    n_cat, n_sub = len(TAXONOMY), len(next(iter(TAXONOMY.values())))

    # Items: latent taxonomy, style, hidden cluster, Zipf popularity.
    sub = rng.integers(0, n_cat * n_sub, cfg.items)      # global subcategory id; category = sub // n_sub
    cat = sub // n_sub
    style = rng.integers(0, len(STYLES), cfg.items)
    cluster = rng.integers(0, cfg.clusters, cfg.items)
    weight = (1.0 + rng.permutation(cfg.items)) ** -cfg.zipf

    features = _modalities(rng, cat, sub, style, n_cat, n_sub, cfg.noise)      # all three: the same draws
    features = {name: features[name] for name in cfg.modality_names}
    users, items = _interactions(rng, cfg, sub, cluster, weight, n_cat, n_sub)
    timestamps = rng.permutation(len(users)).astype(np.int64)
    split = leave_last_out(users, timestamps) if cfg.split == "last" else random_split(users, cfg.seed)

    cat_names = np.array(list(TAXONOMY), dtype=object)
    sub_names = np.array([s for subs in TAXONOMY.values() for s in subs], dtype=object)
    paths = np.array([f"{c} > {s}" for c, subs in TAXONOMY.items() for s in subs], dtype=object)
    styles = np.array(STYLES, dtype=object)
    table = pd.DataFrame({
        "name": styles[style] + " " + sub_names[sub] + " #" + np.arange(cfg.items).astype(str).astype(object),
        "category": pd.Categorical(cat_names[cat], categories=list(TAXONOMY)),
        "subcategory": pd.Categorical(paths[sub], categories=list(paths)),
        "style": pd.Categorical(styles[style], categories=STYLES),
        "cluster": cluster,
    })
    spec = f"demo:items={cfg.items},users={cfg.users},seed={cfg.seed}"
    return InteractionData(name=spec, num_users=cfg.users, num_items=cfg.items, users=users, items=items,
                           split=split, features=features, item_table=table, timestamps=timestamps,
                           sources={"interactions": spec})


def _modalities(rng: np.random.Generator, cat: np.ndarray, sub: np.ndarray, style: np.ndarray,
                n_cat: int, n_sub: int, noise: float) -> dict[str, np.ndarray]:
    """Noisy projections of (category, subcategory, style) prototypes, one mixing per modality."""
    def protos(n: int, dim: int = 32) -> np.ndarray:
        return rng.standard_normal((n, dim), dtype=np.float32)

    p_cat, p_sub, p_style = protos(n_cat), protos(n_cat * n_sub), protos(len(STYLES))
    # Every (subcategory, style) pair has one noiseless point per modality; items add noise around it.
    pair_sub = np.repeat(np.arange(n_cat * n_sub), len(STYLES))
    pair_style = np.tile(np.arange(len(STYLES)), n_cat * n_sub)
    pair = sub * len(STYLES) + style
    mixes = {"visual": (64, 0.0, 1.0, 0.9), "acoustic": (32, 0.35, 0.0, 0.0), "textual": (48, 1.0, 0.45, 0.0)}
    out = {}
    for name, (dim, w_cat, w_sub, w_style) in mixes.items():
        latent = w_cat * p_cat[pair_sub // n_sub] + w_sub * p_sub[pair_sub] + w_style * p_style[pair_style]
        centre = latent @ (rng.standard_normal((32, dim), dtype=np.float32) / np.float32(np.sqrt(32)))
        x = rng.standard_normal((len(cat), dim), dtype=np.float32)
        x *= np.float32(noise)
        x += centre[pair]
        out[name] = x
    return out


def _interactions(rng: np.random.Generator, cfg: DemoConfig, sub: np.ndarray, cluster: np.ndarray,
                  weight: np.ndarray, n_cat: int, n_sub: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw (user, item) pairs from taste, hidden cluster and global popularity; duplicates are dropped."""
    low = cfg.min_interactions
    n_per_user = low + rng.geometric(1.0 / max(cfg.interactions_per_user - low + 1.0, 1.0), cfg.users) - 1
    n_draws = (n_per_user * 1.6).astype(np.int64)      # oversample: repeated draws of an item are dropped
    user = np.repeat(np.arange(cfg.users), n_draws)

    # Tastes: three subcategories per user, two of them in a home category.
    home = rng.integers(0, n_cat, cfg.users)
    taste = np.stack([home * n_sub + rng.integers(0, n_sub, cfg.users),
                      home * n_sub + rng.integers(0, n_sub, cfg.users),
                      rng.integers(0, n_cat * n_sub, cfg.users)], axis=1)          # [U, 3]
    user_cluster = rng.integers(0, cfg.clusters, cfg.users)

    source = rng.random(len(user))
    group = np.where(source < cfg.taste_share, taste[user, rng.integers(0, 3, len(user))],
                     n_cat * n_sub + user_cluster[user])          # groups: subcategories, then clusters
    by_popularity = source >= cfg.taste_share + cfg.cluster_share
    item = _sample_in_groups(rng, group, np.r_[sub, n_cat * n_sub + cluster], np.r_[weight, weight], cfg.items)
    item[by_popularity] = rng.choice(cfg.items, by_popularity.sum(), p=weight / weight.sum())

    key = np.unique(user * cfg.items + item)
    key = key[np.lexsort((rng.random(len(key)), key // cfg.items))]     # shuffle within user before capping
    users, items = key // cfg.items, key % cfg.items
    keep = group_ranks(users, np.arange(len(users)))[0] < n_per_user[users]   # users arrive grouped
    return users[keep], items[keep]


def _sample_in_groups(rng: np.random.Generator, groups: np.ndarray, member_group: np.ndarray,
                      member_weight: np.ndarray, num_items: int) -> np.ndarray:
    """For each entry of `groups`, draw one member of that group with probability proportional to its weight.

    Members (item ids modulo `num_items`) are sorted by group; the normalised cumulative weight of group g lies in
    (g, g + 1], so one `searchsorted` of g + u draws from every group at once. Empty groups fall back to a
    neighbouring group's member, which is harmless for a synthetic world.
    """
    order = np.argsort(member_group, kind="stable")
    g, w = member_group[order], member_weight[order]
    totals = np.bincount(g, weights=w)
    cum = np.cumsum(w)
    within = cum - (np.cumsum(totals) - totals)[g]                 # cumulative weight inside the group
    level = g + within / totals[g]
    pos = np.searchsorted(level, groups + rng.random(len(groups)))
    return (order[np.minimum(pos, len(order) - 1)] % num_items).astype(np.int64)
