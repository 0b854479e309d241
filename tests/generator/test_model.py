import numpy as np
import pytest
import torch

from mmgrec_core.generator import GeneratorConfig, RecIDGenerator, sequence_log_probs
from mmgrec_core.generator.attention import RelationAwareSelfAttention
from mmgrec_core.recid import RecIDTable


def make(pe="relation", item_emb="graph", seed=0, vocab=(4, 4, 3)):
    torch.manual_seed(seed)
    config = GeneratorConfig(dim=16, heads=2, pe=pe, item_emb=item_emb, cooccurrence=False)
    model = RecIDGenerator(config, torch.randn(30, 8), vocab).eval()
    with torch.no_grad():                     # the transition tables start at zero; give them something to do
        for table in model.transition:
            table.normal_()
    return model


def small_table(n=30):
    codes = np.random.default_rng(0).integers(0, 4, (n, 2))
    return RecIDTable(codes, np.arange(n), [str(i) for i in range(n)], codebook_size=4)


@pytest.mark.parametrize("pe", ["relation", "none"])
def test_encoder_treats_the_history_as_a_set(pe):
    model = make(pe)
    history = torch.tensor([[3, 7, 9, 12]])
    perm = torch.tensor([2, 0, 3, 1])
    memory, _ = model.encode(history)
    permuted, _ = model.encode(history[:, perm])
    assert torch.allclose(memory[:, 1:][:, perm], permuted[:, 1:], atol=1e-5)          # 0 is the user token
    assert torch.allclose(memory[:, 0], permuted[:, 0], atol=1e-5)


def test_sinusoidal_encoding_makes_order_matter():
    model = make("sinusoidal")
    memory, _ = model.encode(torch.tensor([[3, 7, 9]]))
    swapped, _ = model.encode(torch.tensor([[7, 3, 9]]))
    assert not torch.allclose(memory[:, [0, 2, 1, 3]], swapped, atol=1e-4)


def test_relation_term_scales_attention_by_the_user():
    attn = RelationAwareSelfAttention(8, 2, user_dim=3).eval()
    e = torch.randn(1, 4, 8).expand(2, -1, -1)
    pad = torch.zeros(2, 4, dtype=torch.bool)
    out = attn(e, pad, torch.randn(2, 3, generator=torch.Generator().manual_seed(0)))
    assert not torch.allclose(out[0], out[1], atol=1e-5)                   # same items, different users
    plain = RelationAwareSelfAttention(8, 2, user_dim=3, relation=False).eval()
    same = plain(e, pad, torch.randn(2, 3))
    assert torch.allclose(same[0], same[1], atol=1e-6)


def test_padding_does_not_change_the_result():
    model = make()
    short, _ = model.encode(torch.tensor([[3, 7]]))
    padded, pad = model.encode(torch.tensor([[3, 7, 0, 0]]))
    assert pad.tolist() == [[False, False, False, True, True]]                       # user token first
    assert torch.allclose(short, padded[:, :3], atol=1e-5)
    table = small_table()
    tokens = torch.from_numpy(table.tokens)
    a = sequence_log_probs(make(vocab=table.trie.vocab), torch.tensor([[3, 7]]), table.trie, tokens)
    b = sequence_log_probs(make(vocab=table.trie.vocab), torch.tensor([[3, 7, 0, 0]]), table.trie, tokens)
    assert torch.allclose(a, b, atol=1e-5)


def test_the_mixture_is_a_distribution_over_the_catalog_even_for_an_empty_history():
    table = small_table()
    model = make(vocab=table.trie.vocab)
    tokens = torch.from_numpy(table.tokens)
    for history in (torch.tensor([[3, 7, 9]]), torch.zeros(1, 3, dtype=torch.long)):
        logp = sequence_log_probs(model, history, table.trie, tokens)                 # [1, items]
        assert torch.isfinite(logp).all()
        assert torch.allclose(logp.exp().sum(), torch.tensor(1.0), atol=1e-5)


def test_the_likelihood_is_the_mixture_computed_by_hand():
    table = small_table(12)
    model = make(vocab=table.trie.vocab)
    history = torch.tensor([[2, 5]])
    tokens = torch.from_numpy(table.tokens)
    memory, pad = model.encode(history)
    prior = model.log_prior(memory, pad)[0].exp()                                       # [3]: user, 2 items
    rows = [0, 2, 5]                                                   # A_d rows: the user token's is 0
    expected = []
    for rec_id in table.tokens.tolist():
        node, per_component = torch.zeros(1, dtype=torch.long), torch.ones(3)
        for d, tok in enumerate(rec_id):
            hidden = model.decode(memory, pad, torch.tensor([rec_id[:d]]), torch.tensor([0]))[:, -1]
            valid = table.trie.valid_next(d, node)[0]
            for j in range(3):
                u = model.components(memory, d)[0, j]                                  # m_j U_d
                z = (hidden[0] + u) @ model.tokens[d].weight.T + model.token_bias[d]
                z = z + model.transition[d][rows[j]]                                   # A_d[item j]
                per_component[j] *= torch.softmax(z[valid], 0)[valid[:tok].sum()]
            node = table.trie.step(d, node, torch.tensor([tok]))
        expected.append(torch.log((prior * per_component).sum()))
    got = sequence_log_probs(model, history, table.trie, tokens)[0]
    assert torch.allclose(got, torch.stack(expected), atol=1e-5)


def test_loss_learns_the_targets():
    table = small_table()
    model = make(vocab=table.trie.vocab)
    model.train()
    history, rows = torch.tensor([[3, 7, 9], [1, 2, 0]]), torch.tensor([0, 1])
    items = torch.tensor([4, 11])
    targets = torch.from_numpy(table.tokens)[items]
    parents = table.trie.item_paths()[items]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model.loss(history, rows, targets, parents, table.trie).item()
    for _ in range(40):
        opt.zero_grad()
        model.loss(history, rows, targets, parents, table.trie).backward()
        opt.step()
    model.eval()
    assert model.loss(history, rows, targets, parents, table.trie).item() < first / 4
    scores = sequence_log_probs(model, history, table.trie, targets)                     # [user, candidate]
    assert (scores.diagonal() > scores.flip(1).diagonal()).all()


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="pe=.rotary.: must be one of"):
        GeneratorConfig(pe="rotary")
    with pytest.raises(ValueError, match="item_emb"):
        GeneratorConfig(item_emb="clip")
    with pytest.raises(ValueError, match="divisible"):
        GeneratorConfig(dim=15, heads=2)


def test_cached_decoding_equals_decoding_the_whole_prefix():
    torch.manual_seed(0)
    config = GeneratorConfig(dim=16, heads=2, decoder_layers=2, cooccurrence=False)
    model = RecIDGenerator(config, torch.randn(30, 8), (4, 4, 3)).eval()
    history = torch.tensor([[3, 7, 9], [1, 2, 0]])
    memory, pad = model.encode(history)
    rows = torch.tensor([0, 1, 1])                                       # three prefixes, two users
    prefix = torch.tensor([[1, 3], [0, 0], [3, 1]])                      # up to depth - 1 tokens
    cache, last = [[] for _ in model.decoder], None
    given = [[] for _ in model.decoder]                                  # with the memory keys passed in
    for d in range(prefix.shape[1] + 1):
        step = model.decode_next(memory, pad, last, rows, cache)
        full = model.decode(memory, pad, prefix[:, :d], rows)[:, -1]
        assert torch.allclose(step, full, atol=1e-5), d
        assert torch.equal(model.decode_next(memory, pad, last, rows, given, model.memory_kv(memory)), step)
        last = prefix[:, d] if d < prefix.shape[1] else None
    assert cache[0][0].shape[2] == prefix.shape[1] + 1                   # one key per position, per layer


def test_cross_attention_of_grouped_beams_equals_the_gathered_path():
    from mmgrec_core.generator.attention import DecoderLayer
    torch.manual_seed(0)
    layer = DecoderLayer(16, 2, 0.0).eval()
    memory, x = torch.randn(2, 5, 16), torch.randn(4, 3, 16)
    pad = torch.tensor([[False] * 5, [False, False, True, True, True]])
    grouped = layer(x, memory, pad, torch.tensor([0, 0, 1, 1]))             # two beams per user, in blocks
    order = torch.tensor([2, 0, 3, 1])                                      # the same rows, interleaved
    gathered = layer(x[order], memory, pad, torch.tensor([1, 0, 1, 0]))
    assert torch.allclose(grouped[order], gathered, atol=1e-5)


@pytest.mark.parametrize("mixture", [True, False])
def test_the_components_logits_with_their_projection_folded_in_equal_them_projected_first(mixture):
    torch.manual_seed(0)
    model = RecIDGenerator(GeneratorConfig(dim=16, heads=2, mixture=mixture), torch.randn(30, 8), (4, 4, 3)).eval()
    with torch.no_grad():
        for table in model.transition:
            table.normal_()
        model.network_weight.fill_(0.7)
        history = torch.tensor([[3, 7, 9, 0], [1, 2, 0, 0]])
        memory, _ = model.encode(history)
        items = model.component_items(history)
        for level in range(model.depth):
            folded = model.memory_logits(memory, level, items)
            assert torch.allclose(folded, model.component_logits(model.components(memory, level), level, items),
                                  atol=1e-5)
            assert folded.shape == (2, 5 if mixture else 1, model.vocab[level])


def test_dropout_keeps_the_expected_share_scaled_and_repeats_under_a_seed():
    from mmgrec_core.generator.attention import Dropout
    drop = Dropout(0.2).train()
    x = torch.ones(200, 500, requires_grad=True)
    torch.manual_seed(3)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.8) < 0.005                       # 100k draws: std 0.0013
    assert torch.allclose(y[kept], torch.tensor(65536 / (65536 - 13107)))       # 1 / (1 - p), p = 13107 / 65536
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())                                      # the same mask, backwards
    torch.manual_seed(3)
    assert torch.equal(drop(x), y)                                              # torch's seed repeats it
    assert not torch.equal(drop(x), y)                                          # and the next call differs
    assert drop.eval()(x) is x and Dropout(0.0).train()(x) is x


@pytest.mark.parametrize("extreme", [False, True])
def test_the_root_level_from_per_user_parts_equals_the_per_row_logits_and_gradients(extreme):
    """Training's root level (every target shares the children) forms the components' logits per user and the
    normalisers as products; it equals `step_log_probs` per row, also where the products underflow float32."""
    table = small_table()
    model = make(vocab=table.trie.vocab)
    if extreme:               # the components favour token 0 by 300 nats, the decoder state token 1: Z underflows
        with torch.no_grad():
            model.transition[0].zero_()[:, 0] = 300.0
            model.token_bias[0].zero_()[1] = 300.0
    history = torch.tensor([[2, 5, 0], [7, 1, 9], [4, 0, 0]])
    rows = torch.tensor([2, 0, 0, 1, 2, 2, 0])                       # uneven and out of order
    targets = torch.from_numpy(table.tokens[[1, 4, 8, 3, 20, 11, 29]])
    memory, pad = model.encode(history)
    items, comps = model.component_items(history), model.components(memory, 0)
    hidden = model.decode(memory, pad, targets[:, :-1], rows)[:, 0]
    children, _, mask = table.trie.children(0, torch.zeros(len(rows), dtype=torch.long))
    slot = (children == targets[:, :1]).float().argmax(1)
    fast = model._shared_target_log_q(hidden, 0, comps, items, rows, children[0], mask[0], None, slot)
    slow = model.step_log_probs(hidden, 0, comps[rows], items[rows], children, mask)
    slow = slow.gather(2, slot[:, None, None].expand(-1, comps.shape[1], 1))[..., 0]
    assert fast.shape == (len(rows), 4) and torch.isfinite(fast).all()
    assert torch.allclose(fast, slow, atol=1e-4)
    params = [model.transition[0], model.tokens[0].weight, model.component[0].weight, model.prior.weight]
    for a, b in zip(torch.autograd.grad(fast.sum(), params, retain_graph=True, allow_unused=True),
                    torch.autograd.grad(slow.sum(), params, allow_unused=True)):
        assert (a is None) == (b is None) and (a is None or torch.allclose(a, b, atol=1e-4))


def long_table(n=40):
    """Rec-IDs of 7 tokens like late fusion's: two free code levels, four tokens their function (forced), and the
    collision token p, which branches only where two items share the codes."""
    codes = np.random.default_rng(1).integers(0, 4, (n, 2))
    forced = np.stack([(codes[:, 0] * 4 + codes[:, 1] * k) % 5 for k in range(1, 5)], 1)
    return RecIDTable(np.hstack([codes, forced]), np.arange(n), [str(i) for i in range(n)], codebook_size=5)


def every_level(model, history, rows, targets, parents, trie, mass):
    """log p(target) scoring every level, the forced ones too (what `decode_log_likelihood` computed before)."""
    memory, pad = model.encode(history)
    items, hidden = model.component_items(history), model.decode(memory, pad, targets[:, :-1], rows)
    log_w = model.log_prior(memory, pad)[rows]
    for d in range(trie.depth):
        children, child, mask = trie.children(d, parents[:, d])
        evidence = model.evidence(d, mass, rows, child) if model.config.cooccurrence else None
        logq = model.step_log_probs(hidden[:, d], d, model.components(memory, d)[rows], items[rows], children, mask,
                                    evidence)
        slot = (children == targets[:, d, None]).float().argmax(1)
        log_w = log_w + logq.gather(2, slot[:, None, None].expand(-1, logq.shape[1], 1))[..., 0]
    return log_w.logsumexp(1)


@pytest.mark.parametrize("mixture, cooccurrence", [(True, True), (True, False), (False, False)])
def test_levels_without_a_choice_are_skipped_without_changing_the_likelihood_or_its_gradients(mixture, cooccurrence):
    from mmgrec_core.data.loaders import load_dataset
    from mmgrec_core.data.sampling import UserItems
    from mmgrec_core.generator.cooccurrence import CoOccurrence
    table = long_table()
    trie = table.trie
    torch.manual_seed(0)
    config = GeneratorConfig(dim=16, heads=2, mixture=mixture, cooccurrence=cooccurrence)
    model = RecIDGenerator(config, torch.randn(40, 8), trie.vocab).eval()
    with torch.no_grad():
        for t in model.transition:
            t.normal_()
    history = torch.tensor([[2, 5, 0], [7, 1, 9], [4, 0, 0]])
    users = torch.tensor([0, 1, 2])
    mass = None
    if cooccurrence:
        data = load_dataset("demo:items=40,users=30,seed=1")
        mass = CoOccurrence(UserItems(data)).node_mass(history, users, trie)
    targets_of = torch.arange(40)
    rows = torch.arange(3).repeat_interleave(40)
    targets = torch.from_numpy(table.tokens)[targets_of.repeat(3)]
    parents = trie.item_paths()[targets_of.repeat(3)]
    branching = [int((trie.children(d, parents[:, d])[2].sum(1) > 1).sum()) for d in range(trie.depth)]
    assert branching[2:6] == [0, 0, 0, 0] and 0 < branching[6] < len(rows)       # forced levels, then some p
    fast = model.log_likelihood(history, rows, targets, parents, trie, mass)
    slow = every_level(model, history, rows, targets, parents, trie, mass)
    assert torch.allclose(fast, slow, atol=1e-5)
    params = [p for p in model.parameters() if p.requires_grad]
    for a, b in zip(torch.autograd.grad(fast.sum(), params, allow_unused=True),
                    torch.autograd.grad(slow.sum(), params, allow_unused=True)):
        a = torch.zeros_like(b) if a is None and b is not None else a     # skipped levels: no graph, gradient 0
        assert (a is None) == (b is None) and (a is None or torch.allclose(a, b, atol=1e-5))
