"""The related systems as presets: each resolves to what its paper describes, trains on a tiny world, and its
characteristic piece matches a case computed by hand."""

import math

import pytest
import torch

from mmgrec_core.config import RunError, resolve
from mmgrec_core.generator.attention import RelationAwareSelfAttention
from mmgrec_core.generator.model import GeneratorConfig, RecIDGenerator
from mmgrec_core.pipeline import train_run
from mmgrec_core.runs import load_run
from mmgrec_core.systems import SYSTEMS
from mmgrec_core.tokenizers.late_fusion import segments

pytestmark = pytest.mark.filterwarnings("ignore::mmgrec_core.data.dataset.DatasetWarning")

# Small enough for seconds per system; the options every tokenizer shares.
TINY = {"dataset": "demo:items=100,users=120,seed=4", "seed": 1,
        "tokenizer": {"codebook_size": 8, "steps": 60, "polish_steps": 20},
        "generator": {"dim": 16}, "training": {"epochs": 2, "eval_every": 1, "valid_users": 40},
        "baselines": []}


def test_presets_say_what_the_papers_describe():
    tiger = resolve({"system": "tiger"})
    assert (tiger.tokenizer.name, tiger.tokenizer.collision) == ("rqvae", "random")
    assert (tiger.generator.pe, tiger.generator.item_emb, tiger.generator.mixture, tiger.generator.transition) \
        == ("sinusoidal", "codes", False, False)
    lf, lfpp = resolve({"system": "mgr-lf"}), resolve({"system": "mgr-lf++"})
    assert lf.tokenizer.name == lfpp.tokenizer.name == "late_fusion"
    assert not lf.tokenizer.options.separator and lfpp.tokenizer.options.separator
    assert lf.training.align_epochs == 0 < lfpp.training.align_epochs
    assert resolve({"system": "bbqrec"}).generator.sim_buckets == 100
    assert resolve({}).system == "mmgrec" and resolve({}) == resolve({"system": "mmgrec"})


def test_settings_override_the_preset_and_the_name_is_stored():
    config = resolve({"system": "tiger", "generator": {"dim": 32}}, ["pe=none"])
    assert (config.generator.dim, config.generator.pe, config.tokenizer.name) == (32, "none", "rqvae")
    assert config.to_dict()["system"] == "tiger"
    assert resolve(config.to_dict()) == config                    # config.json reads back to the same config
    assert resolve({}, ["system=mgr-lf"]).tokenizer.name == "late_fusion"


@pytest.mark.parametrize("settings, message", [
    ({"system": "sasrec"}, "system='sasrec': must be one of mmgrec"),
    ({"training": {"align_epochs": 2}}, "needs tokenizer.name=late_fusion"),
    ({"system": "mgr-lf++", "generator": {"transition": True, "mixture": True}}, "needs generator.transition"),
    ({"system": "tiger", "generator": {"sim_buckets": -1}}, "sim_buckets=-1"),
])
def test_bad_system_settings_are_one_clear_error(settings, message):
    with pytest.raises(RunError, match=message):
        resolve(settings)


@pytest.mark.parametrize("system", SYSTEMS)
def test_every_system_trains_opens_and_recommends_valid_unseen_items(system, tmp_path):
    metrics = train_run(tmp_path / system, {**TINY, "system": system})
    test = metrics["models"]["mmgrec"]["test"]
    assert all(0.0 <= test[m] <= 1.0 for m in ("recall@20", "ndcg@10"))
    run = load_run(tmp_path / system)
    assert run.config.system == system
    recs = run.recommender.recommend(torch.arange(20), 10)
    u, i = run.data.pairs("train")
    for user, row in enumerate(recs.tolist()):
        row = [r for r in row if r >= 0]
        assert row and len(row) == len(set(row)) and not set(row) & set(i[u == user].tolist())
        assert all(0 <= r < run.data.num_items for r in row)
    if system == "mgr-lf++":                    # the alignment ran first and learnt: its loss fell
        align = run.history[run.history["stage"] == "align"]["loss"].to_numpy()
        assert len(align) == run.config.training.align_epochs and align[-1] < align[0]


def test_separator_layout():
    # 3 modalities x 2 levels with separators: codes at 0-1, separator at 2, codes at 3-4, separator 5, codes 6-7
    assert segments(2, 3, True) == [range(0, 2), range(3, 5), range(6, 8)]
    assert segments(2, 3, False) == [range(0, 2), range(2, 4), range(4, 6)]


def test_alignment_loss_by_hand():
    """LF++'s alignment scores the target modality's codes generated alone, each a softmax over its level's
    whole vocabulary. With every token embedding zero, the logits are the biases: p = softmax(b_d) per level."""
    from mmgrec_core.train import alignment_log_likelihood
    layout = segments(2, 2, True)                                        # codes 0-1, separator 2, codes 3-4
    model = RecIDGenerator(GeneratorConfig(dim=4, heads=1, item_emb="codes", mixture=False, transition=False,
                                           pe="sinusoidal", cooccurrence=False, dropout=0.0),
                           torch.randn(2, 3), (3,) * 5, torch.zeros(2, 5, dtype=torch.long)).eval()
    with torch.no_grad():
        for emb in model.tokens:
            emb.weight.zero_()
        model.token_bias[3].copy_(torch.tensor([0.0, math.log(2), math.log(5)]))   # p = 1/8, 2/8, 5/8
        model.token_bias[4].copy_(torch.tensor([math.log(3), 0.0, 0.0]))           # p = 3/5, 1/5, 1/5
    ids = torch.tensor([[1, 0, 2, 2, 0], [0, 2, 2, 1, 1]])
    got = alignment_log_likelihood(model, ids, layout[0], layout[1])
    torch.testing.assert_close(got, torch.tensor([math.log(5 / 8 * 3 / 5), math.log(2 / 8 * 1 / 5)]))
    # a trained-looking model: the target's probability reads the source, and nothing of any other segment
    torch.manual_seed(0)
    model = RecIDGenerator(GeneratorConfig(dim=8, heads=2, item_emb="codes", mixture=False, transition=False,
                                           pe="sinusoidal", cooccurrence=False, dropout=0.0),
                           torch.randn(2, 3), (3,) * 8, torch.zeros(2, 8, dtype=torch.long)).eval()
    three = segments(2, 3, True)                                         # codes 0-1, 3-4, 6-7
    ids = torch.tensor([[1, 0, 2, 2, 0, 2, 1, 1]])
    base = alignment_log_likelihood(model, ids, three[2], three[1])
    other = ids.clone()
    other[0, :2] = torch.tensor([2, 2])                                  # the first modality's codes changed
    torch.testing.assert_close(alignment_log_likelihood(model, other, three[2], three[1]), base)
    source = ids.clone()
    source[0, 6:] = torch.tensor([0, 0])
    assert not torch.allclose(alignment_log_likelihood(model, source, three[2], three[1]), base)


def test_alignment_loss_is_the_mean_over_ordered_pairs_of_each_pair_alone():
    """The batched loss (every source encoded in one pass, every target decoded once for the other sources) is
    the mean over the 6 ordered pairs of 3 segments of -log p(target | source) per target token."""
    from mmgrec_core.train import alignment_log_likelihood, alignment_loss
    torch.manual_seed(0)
    model = RecIDGenerator(GeneratorConfig(dim=8, heads=2, item_emb="codes", mixture=False, transition=False,
                                           pe="sinusoidal", cooccurrence=False, dropout=0.0),
                           torch.randn(2, 3), (3,) * 8, torch.zeros(2, 8, dtype=torch.long)).eval()
    three = segments(2, 3, True)
    ids = torch.randint(3, (5, 8))
    pairs = [(a, b) for a in three for b in three if a != b]
    expected = sum(-alignment_log_likelihood(model, ids, a, b).mean() / len(b) for a, b in pairs) / len(pairs)
    torch.testing.assert_close(alignment_loss(model, ids, three), expected)


def test_item_embedding_from_codes_is_the_sum_of_its_token_embeddings():
    tokens = torch.tensor([[0, 1, 0], [1, 0, 1], [1, 1, 0]])             # 3 items, Rec-IDs of 3 tokens
    model = RecIDGenerator(GeneratorConfig(dim=4, heads=1, item_emb="codes", mixture=False, transition=False,
                                           pe="none", dropout=0.0), torch.randn(3, 5), (2, 2, 2), tokens).eval()
    captured = {}
    model.encode_embedded = lambda x, pad, vectors, buckets=None: captured.setdefault("x", x)
    model.encode(torch.tensor([[2, 3]]))                                  # items 1 and 2 (id + 1)
    e = model.tokens
    expected = torch.stack([e[0].weight[1] + e[1].weight[0] + e[2].weight[1],
                            e[0].weight[1] + e[1].weight[1] + e[2].weight[0]])
    torch.testing.assert_close(captured["x"][0], expected)


def test_similarity_buckets_by_hand():
    model = RecIDGenerator(GeneratorConfig(dim=4, heads=1, sim_buckets=10), torch.randn(3, 2), (2, 2))
    vectors = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]])      # cos: 1, 0, -1 to the first
    b = model.similarity_buckets(vectors, torch.zeros(1, 3, dtype=torch.bool))
    # round((cos + 1) / 2 x 10): cos 1 -> 10, 0 -> 5, -1 -> 0; the user token's row and column -> 11
    assert b.shape == (1, 4, 4)
    assert b[0, 1:, 1:].tolist() == [[10, 5, 0], [5, 10, 5], [0, 5, 10]]
    assert set(b[0, 0].tolist()) == {11} and set(b[0, :, 0].tolist()) == {11}


def test_similarity_reweighted_attention_by_hand():
    attn = RelationAwareSelfAttention(dim=2, heads=1, user_dim=1, relation=False, sim_buckets=2)
    with torch.no_grad():                        # q = k = 0 (uniform attention), v = e, output = identity
        attn.qkv.weight.zero_()
        attn.qkv.bias.zero_()
        attn.qkv.weight[4:] = torch.eye(2)
        attn.out.weight.copy_(torch.eye(2))
        attn.out.bias.zero_()
        attn.sim.weight[1] = torch.tensor([2.0, 3.0])                  # bucket 1 scales the values
    e = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    buckets = torch.tensor([[[0, 1], [1, 0]]])                          # cross pairs in bucket 1, self in 0
    y = attn(e, torch.zeros(1, 2, dtype=torch.bool), torch.zeros(1, 1), buckets)
    # y_0 = 1/2 (1 * v_0) + 1/2 ([2, 3] * v_1) = [0.5, 1.5];  y_1 = 1/2 ([2, 3] * v_0) + 1/2 v_1 = [1.0, 0.5]
    torch.testing.assert_close(y[0], torch.tensor([[0.5, 1.5], [1.0, 0.5]]))
    plain = RelationAwareSelfAttention(dim=2, heads=1, user_dim=1, relation=False)
    plain.load_state_dict({k: v for k, v in attn.state_dict().items() if not k.startswith("sim")})
    ones = torch.zeros(1, 2, 2, dtype=torch.long)                       # bucket 0 = ones: plain attention
    torch.testing.assert_close(attn(e, torch.zeros(1, 2, dtype=torch.bool), torch.zeros(1, 1), ones),
                               plain(e, torch.zeros(1, 2, dtype=torch.bool), torch.zeros(1, 1)))
    assert math.isclose(float(y.detach().sum()), 3.5)
