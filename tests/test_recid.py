import numpy as np
import pandas as pd
import pytest
import torch

from mmgrec_core.recid import RecIDTable, collision_tokens

# Six items, two levels, codebook size 3. Groups: (0,1) -> items 0, 2, 5; (0,2) -> 1; (2,0) -> items 3, 4.
CODES = np.array([[0, 1], [0, 2], [0, 1], [2, 0], [2, 0], [0, 1]])
POP = np.array([5, 1, 9, 3, 3, 5])
NAMES = ["a", "b", "c", "d", "e", "f"]


def small() -> RecIDTable:
    return RecIDTable(CODES, POP, NAMES, codebook_size=3)


def random_table(seed: int = 0, n: int = 300, k: int = 4, collision: str = "popularity") -> RecIDTable:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, k, size=(n, 3))
    pop = rng.integers(0, 5, size=n)                               # many ties
    return RecIDTable(codes, pop, [f"item {i}" for i in range(n)], collision=collision, seed=seed,
                      codebook_size=k)


def test_popularity_tokens_by_hand():
    t = small()
    # group (0,1): item 2 (9), then items 0 and 5 (5 each, tie by id); group (2,0): items 3, 4 (3 each)
    assert t.tokens[:, -1].tolist() == [1, 0, 0, 0, 1, 2]
    assert t.rec_id(5) == (0, 1, 2) and t.max_p == 2
    assert t.collision_rate == pytest.approx(5 / 6)                # only item 1 is alone


@pytest.mark.parametrize("collision", ["popularity", "random"])
def test_rows_are_unique(collision):
    t = random_table(collision=collision)
    assert len(np.unique(t.tokens, axis=0)) == t.num_items


def test_popularity_order_matches_a_groupby():
    t = random_table()
    df = pd.DataFrame(t.tokens[:, :-1], columns=["c1", "c2", "c3"]).assign(pop=t.popularity,
                                                                            item=np.arange(t.num_items))
    df = df.sort_values(["pop", "item"], ascending=[False, True])
    expected = df.groupby(["c1", "c2", "c3"]).cumcount().sort_index().to_numpy()
    assert np.array_equal(t.tokens[:, -1], expected)
    sizes = df.groupby(["c1", "c2", "c3"])["item"].transform("size").sort_index().to_numpy()
    assert t.collision_rate == pytest.approx((sizes > 1).mean())


def test_random_tokens_are_a_seeded_permutation_within_groups():
    a, b = (collision_tokens(CODES, POP, collision="random", seed=0) for _ in range(2))
    assert np.array_equal(a, b)
    big = np.random.default_rng(0).integers(0, 2, size=(400, 2))
    p = collision_tokens(big, np.zeros(400), collision="random", seed=0)
    q = collision_tokens(big, np.zeros(400), collision="random", seed=1)
    assert not np.array_equal(p, q)
    for key in np.unique(big, axis=0):
        members = (big == key).all(1)
        assert sorted(p[members]) == list(range(members.sum()))
    # with every popularity equal the popularity order is the id order, the random one is not
    assert not np.array_equal(p, collision_tokens(big, np.zeros(400)))


def all_paths(trie, depth):
    """Enumerate every prefix of the given length by walking the tensor trie from the root."""
    paths = {(): 0}
    for d in range(depth):
        nxt = {}
        for prefix, node in paths.items():
            lo, hi = trie.indptr[d][node], trie.indptr[d][node + 1]
            for q in range(lo, hi):
                nxt[(*prefix, int(trie.next_token[d][q]))] = q
        paths = nxt
    return paths


def test_trie_holds_exactly_the_item_prefixes():
    t = random_table()
    for d in range(t.levels + 2):
        paths = all_paths(t.trie, d)
        assert set(paths) == {tuple(row[:d]) for row in t.tokens.tolist()}
        assert len(paths) == t.trie.num_prefixes(d)
        for prefix, node in paths.items():
            start, end = t.trie.items_under(d, torch.tensor([node]))
            under = set(t.trie.items[int(start):int(end)].tolist())
            assert under == {i for i, row in enumerate(t.tokens.tolist()) if tuple(row[:d]) == prefix}
    leaves = all_paths(t.trie, t.levels + 1)
    items = t.trie.item_of_leaf(torch.tensor(list(leaves.values())))
    assert [t.rec_id(int(i)) for i in items] == list(leaves)


def test_valid_next_gives_the_exact_mask():
    trie = small().trie
    # Rec-IDs: a (0,1,1) b (0,2,0) c (0,1,0) d (2,0,0) e (2,0,1) f (0,1,2); prefix ids follow token order
    assert trie.valid_next(0, torch.tensor([0])).tolist() == [[True, False, True]]
    # depth 1: prefix 0 = (0,), prefix 1 = (2,); -1 is a dead beam
    assert trie.valid_next(1, torch.tensor([1, 0, -1])).tolist() == [
        [True, False, False], [False, True, True], [False, False, False]]
    # depth 2: (0,1) (0,2) (2,0); last level vocab = max_p + 1 = 3
    assert trie.valid_next(2, torch.tensor([0, 1, 2])).tolist() == [
        [True, True, True], [True, False, False], [True, True, False]]


def test_step_follows_valid_tokens_and_rejects_others():
    t = small()
    trie = t.trie
    children = trie.step(0, torch.tensor([0, 0, 0, 0, -1]), torch.tensor([0, 1, 2, 7, 0]))
    assert children.tolist() == [0, -1, 1, -1, -1]              # token 1 unused, 7 out of range, -1 dead
    node = torch.tensor([0])
    for d, tok in enumerate((2, 0, 1)):
        node = trie.step(d, node, torch.tensor([tok]))
    assert trie.item_of_leaf(node).tolist() == [4]
    assert t.item_of((2, 0, 1)) == 4 and t.item_of((2, 0, 2)) is None and t.item_of((2, 0)) is None
    assert t.prefix_items((0, 1)).tolist() == [2, 0, 5] and t.prefix_items((1,)).tolist() == []
    assert sorted(t.prefix_items(()).tolist()) == list(range(6))


def test_largest_groups_and_tree_frame():
    t = small()
    g = t.largest_groups(2)
    assert g["prefix"].tolist() == [(0, 1), (2, 0)] and g["size"].tolist() == [3, 2]
    assert g["items"].tolist() == [[2, 0, 5], [3, 4]] and g["names"].tolist() == [["c", "a", "f"], ["d", "e"]]
    tree = t.tree_frame()
    assert tree["id"].is_unique and set(tree["parent"]) - {""} <= set(tree["id"])
    assert tree.loc[tree["id"] == "0", ["label", "items", "popularity"]].values.tolist() == [["c1=0", 4, 20]]
    leaves = tree[tree["depth"] == 3].set_index("item")
    assert leaves.loc[4, ["id", "label", "parent"]].tolist() == ["2/0/1", "e", "2/0"]
    # every node's popularity is the sum over its children
    kids = tree[tree["parent"] != ""].groupby("parent")["popularity"].sum()
    assert (tree.set_index("id").loc[kids.index, "popularity"] == kids).all()


def test_parquet_round_trip(tmp_path):
    t = random_table(collision="random")
    path = tmp_path / "recids.parquet"
    t.to_parquet(path)
    assert list(pd.read_parquet(path).columns) == ["item", "name", "c1", "c2", "c3", "p"]
    back = RecIDTable.read_parquet(path, popularity=t.popularity)
    assert np.array_equal(back.tokens, t.tokens) and back.names.tolist() == t.names.tolist()
    assert (back.codebook_size, back.collision, back.seed, back.max_p) == (4, "random", 0, t.max_p)
    for a, b in zip(back.trie.keys + back.trie.bounds, t.trie.keys + t.trie.bounds, strict=True):
        assert torch.equal(a, b)
    pd.testing.assert_frame_equal(back.tree_frame(), t.tree_frame())
    assert [p.name for p in tmp_path.iterdir()] == ["recids.parquet"]  # no temporary file left behind


def test_duplicate_tokens_and_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="not unique"):
        RecIDTable.from_tokens(np.array([[0, 1, 0], [0, 1, 0]]), ["a", "b"])
    with pytest.raises(ValueError, match="popularity"):
        RecIDTable(CODES, POP[:5], NAMES)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        RecIDTable(CODES, POP, NAMES, codebook_size=2)


def test_trie_moves_between_devices():
    trie = small().trie.to("cpu")
    assert trie.items.device.type == "cpu" and trie.vocab == (3, 3, 3)
    if torch.cuda.is_available():
        gpu = small().trie.to("cuda")
        mask = gpu.valid_next(2, torch.tensor([0, 1, 2], device="cuda"))
        assert mask.cpu().tolist() == trie.valid_next(2, torch.tensor([0, 1, 2])).tolist()
