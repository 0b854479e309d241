import numpy as np
import pytest
import torch

from mmgrec_core.data.loaders import load_dataset
from mmgrec_core.data.sampling import UserItems
from mmgrec_core.generator import GeneratorConfig, RecIDGenerator, beam_search, histories, sequence_log_probs
from mmgrec_core.generator import beam as beam_module
from mmgrec_core.generator.beam import children_mixture, mixture, vocabulary_mixture
from mmgrec_core.generator.cooccurrence import CoOccurrence
from mmgrec_core.generator.recommender import MMGRec, length_batches
from mmgrec_core.recid import RecIDTable

pytestmark = pytest.mark.filterwarnings("ignore::mmgrec_core.data.dataset.DatasetWarning")


@pytest.fixture(scope="module")
def world():
    torch.manual_seed(0)
    data = load_dataset("demo:items=80,users=50,seed=2")
    codes = np.random.default_rng(0).integers(0, 3, (data.num_items, 3))     # 27 prefixes: many collisions
    table = RecIDTable(codes, data.popularity, data.item_table["name"].tolist(), codebook_size=3)
    model = RecIDGenerator(GeneratorConfig(dim=16, heads=2), torch.randn(data.num_items, 8),
                           table.trie.vocab).eval()
    with torch.no_grad():
        for t in model.transition:                                          # trained tables are not zero
            t.normal_()
        model.evidence_scale.uniform_(0.5, 1.5)                             # nor are the evidence scales
        model.network_weight.fill_(0.6)                                     # beta as chosen on validation
    seen = UserItems(data)
    users = torch.arange(data.num_users)
    history = histories(seen, users, 50)
    mass = CoOccurrence(seen).node_mass(history, users, table.trie)
    return data, table, model, seen, users, history, mass


def exact_top_k(model, table, seen, users, history, k, mass):
    """Score every item's whole Rec-ID, drop training items, sort: what beam search must reproduce."""
    scores = sequence_log_probs(model, history, table.trie, torch.from_numpy(table.tokens), mass)
    return seen.mask_(scores, users).topk(k, 1)


def test_full_width_beam_equals_exact_enumeration(world):
    data, table, model, seen, users, history, mass = world
    result = beam_search(model, history, table.trie, k=10, beam=data.num_items, seen=seen, users=users, mass=mass)
    exact = exact_top_k(model, table, seen, users, history, 10, mass)
    assert torch.equal(result.items, exact.indices)
    assert torch.allclose(result.scores, exact.values, atol=1e-4)


def test_full_width_beam_equals_exact_enumeration_without_cooccurrence(world):
    data, table, model, seen, users, history, _ = world
    plain = RecIDGenerator(GeneratorConfig(dim=16, heads=2, cooccurrence=False), model.item_vectors,
                           table.trie.vocab).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items()
                           if not k.startswith(("evidence", "network_weight"))})
    result = beam_search(plain, history, table.trie, k=10, beam=data.num_items, seen=seen, users=users)
    exact = exact_top_k(plain, table, seen, users, history, 10, None)
    assert torch.equal(result.items, exact.indices)
    assert torch.allclose(result.scores, exact.values, atol=1e-4)


def test_narrow_beam_returns_valid_unseen_distinct_items(world):
    data, table, model, seen, users, history, mass = world
    result = beam_search(model, history, table.trie, k=10, beam=10, seen=seen, users=users, mass=mass)
    items = result.items.numpy()
    assert ((items >= 0) & (items < data.num_items)).all()
    train = data.matrix("train").toarray().astype(bool)
    assert not train[np.arange(len(items))[:, None], items].any()
    assert all(len(set(row)) == len(row) for row in items)
    assert (np.diff(result.scores.numpy(), axis=1) <= 1e-6).all()           # best first
    # a narrow beam can only miss items, never score one higher than exact scoring does
    exact = exact_top_k(model, table, seen, users, history, 10, mass)
    assert (result.scores[:, 0] <= exact.values[:, 0] + 1e-5).all()


def test_steps_show_valid_prefixes_that_lead_to_the_answer(world):
    data, table, model, seen, users, history, _ = world
    mass = CoOccurrence(seen).node_mass(history[:4], users[:4], table.trie)
    result = beam_search(model, history[:4], table.trie, k=5, beam=8, seen=seen, users=users[:4],
                         return_steps=True, mass=mass)
    assert len(result.steps) == table.levels + 1
    prefixes = {tuple(row[:d]) for row in table.tokens.tolist() for d in range(1, table.levels + 2)}
    for d, step in enumerate(result.steps, start=1):
        assert step.tokens.shape[2] == d
        for row, scores in zip(step.tokens.tolist(), step.scores.tolist()):
            assert all(tuple(p) in prefixes for p, s in zip(row, scores) if s > float("-inf"))
    final = result.steps[-1].tokens[:, :5]
    assert [[table.item_of(tuple(t)) for t in row] for row in final.tolist()] == result.items.tolist()


def test_user_who_saw_almost_everything_gets_a_short_padded_list():
    data = load_dataset("demo:items=30,users=20,seed=3")
    table = RecIDTable(np.random.default_rng(1).integers(0, 2, (30, 2)), data.popularity,
                       data.item_table["name"].tolist(), codebook_size=2)
    model = RecIDGenerator(GeneratorConfig(dim=8, heads=1), torch.randn(30, 4), table.trie.vocab).eval()
    seen = UserItems(data)
    seen.indptr = torch.tensor([0, 27] + [27] * 19)                    # user 0 has seen items 0..26
    seen.indices = torch.arange(27)
    history, user = histories(seen, torch.tensor([0]), 50), torch.tensor([0])
    result = beam_search(model, history, table.trie, k=5, beam=5, seen=seen, users=user,
                         mass=CoOccurrence(seen).node_mass(history, user, table.trie))
    assert sorted(result.items[0, :3].tolist()) == [27, 28, 29]
    assert result.items[0, 3:].tolist() == [-1, -1]
    assert torch.isneginf(result.scores[0, 3:]).all()


def test_beam_narrower_than_k_is_refused(world):
    data, table, model, seen, users, history, _ = world
    with pytest.raises(ValueError, match="beam width"):
        beam_search(model, history, table.trie, k=10, beam=5)


def test_the_factorised_mixture_equals_it_in_log_space_also_where_float32_underflows():
    gen = torch.Generator().manual_seed(0)
    g, w, m, v = 2, 3, 4, 7                                                  # 2 users x 3 beams, 4 components
    base = torch.randn(g * w, v, generator=gen) * 3                          # [R, V] prefix part
    comp = torch.randn(g, m, v, generator=gen) * 3                           # [G, M, V] component part
    children = torch.tensor([[0, 2, 5, 6]] * (g * w))                        # [R, C] tokens
    valid = torch.ones(g * w, 4, dtype=torch.bool)
    valid[1, 3] = False                                                      # a padding child
    valid[4] = False                                                         # a dead beam slot
    comp[0, :, 2] -= 1000.0                                                  # user 0's child 2: e^-1000 everywhere
    comp[1, 1, :] -= 2000.0                                                  # user 1's component 1 underflows
    log_w = torch.randn(g * w, m, generator=gen).log_softmax(1)
    log_w[0, 3] = float("-inf")                                              # a padding component
    cand, log_z = mixture(base, comp, log_w, children, valid)
    z = (base.gather(1, children)[:, None] + comp.repeat_interleave(w, 0)[:, :, children[0]]).double()
    z = z.masked_fill(~valid[:, None], float("-inf"))                        # [R, M, C]
    alive = valid.any(1)
    expected_z = z.logsumexp(2)
    expected = (log_w[..., None] + z - expected_z[..., None]).logsumexp(1)   # [R, C]
    assert torch.isfinite(cand[valid]).all() and (cand[:3, 1] < -900).all()
    assert torch.isneginf(cand[~valid]).all()
    assert torch.allclose(cand[valid].double(), expected[valid], atol=1e-4, rtol=1e-6)
    assert torch.allclose(log_z[alive].double(), expected_z[alive], atol=1e-3, rtol=1e-6)
    # the same over the whole vocabulary: base -inf off the children, cand -inf there
    row, slot = valid.nonzero(as_tuple=True)
    off = torch.full_like(base, float("-inf")).index_put_((row, children[row, slot]), torch.tensor(0.0))
    wide, wide_log_z = vocabulary_mixture(base + off, comp, log_w, valid.sum(1))
    assert torch.allclose(wide[row, children[row, slot]].double(), expected[row, slot], atol=1e-4, rtol=1e-6)
    assert torch.isneginf(wide[torch.isneginf(off)]).all()
    assert torch.allclose(wide_log_z[alive].double(), expected_z[alive], atol=1e-3, rtol=1e-6)
    assert (wide_log_z[~alive] == 0).all()


def test_the_mixture_child_by_child_equals_the_one_over_the_vocabulary():
    """`children_mixture` lists each valid child once; it must give what `mixture` gives on the padded rows."""
    gen = torch.Generator().manual_seed(1)
    g, w, m, v = 3, 2, 4, 9
    base = torch.randn(g * w, v, generator=gen) * 3
    comp = torch.randn(g, m, v, generator=gen) * 3
    children = torch.tensor([[1, 4, 8], [0, 0, 0], [2, 3, 0], [5, 0, 0], [6, 7, 8], [0, 1, 2]])   # [R, C]
    valid = torch.tensor([[1, 1, 1], [0, 0, 0], [1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 1, 1]], dtype=torch.bool)
    log_w = torch.randn(g * w, m, generator=gen).log_softmax(1)
    log_w[2, 1] = float("-inf")                                              # a padding component
    cand, log_z = mixture(base, comp, log_w, children, valid)
    row, slot = valid.nonzero(as_tuple=True)
    token = children[row, slot]
    kid_cand, kid_log_z = children_mixture(base[row, token], comp, log_w, row, token, w)
    assert torch.allclose(kid_cand, cand[row, slot], atol=1e-5)
    assert torch.allclose(kid_log_z, log_z, atol=1e-5)                       # 0 on the row without children
    assert torch.allclose(kid_cand[row == 3], log_w[3].logsumexp(0), atol=1e-6)   # one child: q = 1


@pytest.mark.parametrize("cooccurrence", [True, False])
def test_full_width_beam_equals_exact_enumeration_child_by_child_and_at_the_last_choice(world, cooccurrence):
    """A wide vocabulary with few children per prefix, as deep levels of a large catalog have: each level is
    scored child by child, and the third level is the last choice (one item per child), where beams with one
    child are not decoded. The answer must still be exactly that of scoring every item."""
    data, _, _, seen, users, history, mass = world
    rng = np.random.default_rng(4)
    first = np.repeat(np.arange(16), 5)[rng.permutation(data.num_items)]      # 16 prefixes of 5 items each
    rank = np.empty(data.num_items, dtype=int)
    rank[np.argsort(first, kind="stable")] = np.arange(data.num_items) % 5   # an item's rank in its prefix
    codes = np.stack([first // 4, first % 4, rank * 40 + rng.integers(0, 40, data.num_items)], 1)
    table = RecIDTable(codes, data.popularity, data.item_table["name"].tolist(), codebook_size=256)
    assert table.trie.num_prefixes(3) == data.num_items and table.max_p == 0
    torch.manual_seed(2)
    model = RecIDGenerator(GeneratorConfig(dim=16, heads=2, cooccurrence=cooccurrence),
                           torch.randn(data.num_items, 8), table.trie.vocab).eval()
    with torch.no_grad():
        for t in model.transition:
            t.normal_()
    mass = CoOccurrence(seen).node_mass(history, users, table.trie) if cooccurrence else None
    result = beam_search(model, history, table.trie, k=10, beam=data.num_items, seen=seen, users=users, mass=mass)
    exact = exact_top_k(model, table, seen, users, history, 10, mass)
    assert torch.equal(result.items, exact.indices)
    assert torch.allclose(result.scores, exact.values, atol=1e-4)


def test_full_width_beam_equals_exact_enumeration_in_the_padded_layout(world, monkeypatch):
    """Prefixes with a sixth of the vocabulary as children each: too many to list one by one, too few to score
    over the whole vocabulary, so the second level runs `mixture` on padded rows. Exact all the same."""
    data, _, _, seen, users, history, _ = world
    item = np.arange(data.num_items)
    codes = np.stack([item % 2, item // 2 * 6, np.zeros_like(item)], 1)           # 2 prefixes x 40 children
    table = RecIDTable(codes, data.popularity, data.item_table["name"].tolist(), codebook_size=256)
    torch.manual_seed(3)
    model = RecIDGenerator(GeneratorConfig(dim=16, heads=2, cooccurrence=False), torch.randn(data.num_items, 8),
                           table.trie.vocab).eval()
    with torch.no_grad():
        for t in model.transition:
            t.normal_()
    padded = []
    monkeypatch.setattr(beam_module, "mixture", lambda *a: padded.append(1) or mixture(*a))
    result = beam_search(model, history, table.trie, k=10, beam=data.num_items, seen=seen, users=users)
    exact = exact_top_k(model, table, seen, users, history, 10, None)
    assert padded, "the padded layout was not used"
    assert torch.equal(result.items, exact.indices)
    assert torch.allclose(result.scores, exact.values, atol=1e-4)


def test_beams_whose_prefixes_hold_one_item_stop_early_with_the_exact_answer(world):
    """Late-fusion-like Rec-IDs: three code levels, four tokens that follow from them, the collision token. Once
    every beam's prefix covers one item the rest is forced, so the search stops decoding, and it still returns
    exactly what scoring every item does, with one step per level."""
    data, _, _, seen, users, history, _ = world
    distinct = np.random.default_rng(3).choice(125, data.num_items, replace=False)     # no collisions
    codes = np.stack([distinct // 25, distinct // 5 % 5, distinct % 5], 1)
    forced = np.stack([(codes @ np.array([1, 2, 3]) * k) % 7 for k in range(1, 5)], 1)
    table = RecIDTable(np.hstack([codes, forced]), data.popularity, data.item_table["name"].tolist(),
                       codebook_size=7)
    torch.manual_seed(1)
    model = RecIDGenerator(GeneratorConfig(dim=16, heads=2), torch.randn(data.num_items, 8), table.trie.vocab).eval()
    mass = CoOccurrence(seen).node_mass(history, users, table.trie)
    calls = []
    decode_next = model.decode_next
    model.decode_next = lambda *args: calls.append(1) or decode_next(*args)
    result = beam_search(model, history, table.trie, k=5, beam=5, seen=seen, users=users, mass=mass,
                         return_steps=True)
    assert len(calls) == 3 and len(result.steps) == table.levels + 1           # stopped, every step shown
    final = result.steps[-1].tokens[:, :5]
    assert [[table.item_of(tuple(t)) for t in row] for row in final.tolist()] == result.items.tolist()
    assert torch.equal(result.steps[-1].scores[:, :5], result.scores)
    wide = beam_search(model, history, table.trie, k=10, beam=data.num_items, seen=seen, users=users, mass=mass)
    exact = exact_top_k(model, table, seen, users, history, 10, mass)
    assert torch.equal(wide.items, exact.indices)
    assert torch.allclose(wide.scores, exact.values, atol=1e-4)


def test_recommend_searches_users_by_history_length_and_returns_them_in_the_order_given(world):
    data, table, model, seen, users, history, mass = world
    rec = MMGRec(model, table, seen, beam=8, batch_size=4)
    asked = users[(-seen.lengths(users)).argsort()][:12].flip(0)[torch.tensor([3, 0, 11, 7, 1, 10, 2, 9, 4, 8, 5, 6])]
    alone = torch.cat([rec.search(asked[i:i + 1], 5).items for i in range(len(asked))])   # each user by itself
    assert torch.equal(rec.recommend(asked, 5), alone)
    assert rec.recommend(asked[:0], 5).shape == (0, 5)


def test_length_batches_cap_the_users_and_the_padding_of_each_batch():
    lengths = torch.tensor([1, 1, 2, 3, 5, 9, 10, 30])
    # padding as users join: 0, 2 (both 1s to 2), 5, then 13 with the 5 (over 10): a cut before it, and so on
    assert length_batches(lengths, 8, budget=10) == [slice(0, 4), slice(4, 7), slice(7, 8)]
    assert length_batches(lengths, 3, budget=10) == [slice(0, 3), slice(3, 6), slice(6, 7), slice(7, 8)]   # <= 3 users
    assert length_batches(lengths, 8, budget=0) == [slice(0, 2)] + [slice(i, i + 1) for i in range(2, 8)]
    assert length_batches(lengths, 8, budget=float("inf")) == [slice(0, 8)]
    assert length_batches(torch.tensor([], dtype=torch.long), 8) == []
