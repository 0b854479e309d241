import pytest

from mmgrec_core.analysis import SweepConfig, cached_sweep, sweep
from mmgrec_core.data.loaders import load_dataset

pytestmark = pytest.mark.filterwarnings("ignore::mmgrec_core.data.dataset.DatasetWarning")
TINY = SweepConfig(codebooks=(4, 16), levels=(2, 3), steps=50, polish_steps=20)


def test_sweep_rows_trends_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMGREC_CACHE", str(tmp_path))
    data = load_dataset("demo:items=200,users=150,seed=7")
    seen = []
    assert cached_sweep(data, TINY) is None
    frame = sweep(data, TINY, progress=lambda f, msg: seen.append((f, msg)))
    assert len(frame) == 4 * 2 * 2 and seen[-1][0] == 1.0
    assert "representations" in seen[0][1]                  # the slow first part says what it is doing
    assert all("s left" in msg for _, msg in seen[2:-1])     # and from the second point on, the time left
    assert frame["collision_rate"].between(0, 1).all()
    # more room, fewer collisions: 3 x 16 can hold every item apart, 2 x 4 cannot (16 prefixes < 200 items)
    by = frame.set_index(["tokenizer", "levels", "codebook"])["collision_rate"]
    for tok in TINY.tokenizers:
        assert by[(tok, 2, 4)] > by[(tok, 3, 16)]
    assert list((tmp_path / "sweeps").glob("*.parquet"))
    again = sweep(data, TINY, progress=lambda f, msg: pytest.fail("should come from the cache"))
    assert again.equals(frame) and cached_sweep(data, TINY).equals(frame)
