"""`compare`: systems and baselines on one split and several seeds, a leaderboard with the seeds' spread,
resumable, and clear about bad input and failures."""

import json
import statistics

import pytest

from mmgrec_core import compare as compare_module
from mmgrec_core.cli import main
from mmgrec_core.compare import CompareRequest, compare, read_leaderboard
from mmgrec_core.config import RunError

pytestmark = pytest.mark.filterwarnings("ignore::mmgrec_core.data.dataset.DatasetWarning")

DATASET = "demo:items=100,users=120,seed=4"
SETS = ("tokenizer.codebook_size=8", "tokenizer.steps=60", "tokenizer.polish_steps=20", "generator.dim=16",
        "training.epochs=2", "training.valid_users=40")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    request = CompareRequest(DATASET, ("mmgrec", "tiger", "popularity", "ease"), (0, 1), SETS)
    return out, request, compare(out, request)


def test_leaderboard_holds_every_system_with_mean_and_spread_over_seeds(finished):
    out, request, board = finished
    assert list(board["systems"]) == list(request.systems) and board["failed"] == {}
    for name in request.systems:
        entries = [json.loads((out / "runs" / f"{name}-seed{s}" / "entry.json").read_text()) for s in (0, 1)]
        values = [e["test"]["ndcg@10"] for e in entries]
        row = board["systems"][name]
        assert row["test"]["ndcg@10"]["mean"] == pytest.approx(statistics.fmean(values))
        assert row["test"]["ndcg@10"]["std"] == pytest.approx(statistics.stdev(values))
        assert row["seeds"] == [0, 1] and row["inference_ms"]["mean"] > 0
    assert board["systems"]["popularity"]["test"]["ndcg@10"]["std"] == 0.0          # deterministic
    ease = [json.loads((out / "runs" / f"ease-seed{s}" / "entry.json").read_text()) for s in (0, 1)]
    assert "tuned_on_seed" not in ease[0] and ease[1]["tuned_on_seed"] == 0         # tuned once, refitted
    assert ease[0]["test"] == ease[1]["test"]
    assert board["systems"]["tiger"]["rec_id_length"] == 4
    assert set(board["systems"]["tiger"]["ami"]) >= {"fused~visual"}               # early fusion diagnostic
    assert read_leaderboard(out) == board
    csv = (out / "leaderboard.csv").read_text().splitlines()
    assert csv[0].startswith("system,kind,seeds,test_recall@5") and len(csv) == 1 + len(request.systems)
    assert "plotly" in (out / "leaderboard.html").read_text()[:20000].lower()


def test_a_second_compare_skips_what_finished(finished, monkeypatch):
    out, request, board = finished
    calls = []
    monkeypatch.setattr(compare_module, "train_run", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(compare_module, "train_baseline", lambda *a, **k: calls.append(a))
    assert compare(out, request) == board and calls == []


def test_worker_processes_train_the_same_entries(finished, tmp_path):
    """jobs=2 trains units in two spawned processes; every run seeds itself, so the entries match jobs=1's."""
    out, request, _ = finished
    board = compare(tmp_path, CompareRequest(DATASET, ("tiger", "ease"), (0, 1), SETS), jobs=2)
    assert board["failed"] == {} and list(board["systems"]) == ["tiger", "ease"]
    for name in ("tiger", "ease"):
        for seed in (0, 1):
            one, two = (json.loads((d / "runs" / f"{name}-seed{seed}" / "entry.json").read_text())
                        for d in (out, tmp_path))
            assert two["test"] == one["test"] and two["valid"] == one["valid"]


def test_systems_with_the_same_settings_train_once_and_each_get_the_run(tmp_path, monkeypatch):
    """tiger and mgr-ef differ only in name: one training per seed, the second gets a renamed copy."""
    from mmgrec_core.rundir import RunDir
    from mmgrec_core.runs import load_run
    trained = []
    real = compare_module.train_run
    monkeypatch.setattr(compare_module, "train_run", lambda path, *a, **k: trained.append(path) or real(path, *a, **k))
    board = compare(tmp_path, CompareRequest(DATASET, ("tiger", "mgr-ef"), (0,), SETS))
    assert [p.name for p in trained] == ["tiger-seed0"] and board["failed"] == {}
    tiger, ef = (json.loads((tmp_path / "runs" / f"{s}-seed0" / "entry.json").read_text()) for s in ("tiger", "mgr-ef"))
    assert ef["same_run_as"] == "tiger" and ef["system"] == "mgr-ef" and "same_run_as" not in tiger
    assert ef["test"] == tiger["test"] and ef["ami"] == tiger["ami"]
    assert board["systems"]["mgr-ef"]["same_run_as"] == "tiger" and "same_run_as" not in board["systems"]["tiger"]
    copied = tmp_path / "runs" / "mgr-ef-seed0"
    assert RunDir(copied).config().system == "mgr-ef" and RunDir(copied).finished
    assert load_run(copied).table.tokens.shape[1] == board["systems"]["mgr-ef"]["rec_id_length"]
    assert not list((tmp_path / "runs").glob(".*"))                                     # no partial copy left


def test_per_modality_rqvae_fits_are_made_once_for_every_run_that_needs_them(tmp_path, monkeypatch):
    """TIGER's AMI diagnostic and MGR-LF's tokenizer fit the same per-modality RQ-VAEs (same seed): once each."""
    from mmgrec_core.tokenizers import rqvae
    fits = []
    real = rqvae.train_rqvae
    monkeypatch.setattr(rqvae, "train_rqvae", lambda x, *a, **k: fits.append(x.shape) or real(x, *a, **k))
    board = compare(tmp_path, CompareRequest(DATASET, ("tiger", "mgr-lf"), (0,), SETS))
    assert board["failed"] == {}
    assert len(fits) == 1 + 3                          # tiger's fused RQ-VAE, then each of the 3 modalities once
    assert len(list((tmp_path / "fits").glob("rqvae-*.npy"))) == 3 and not rqvae._SHARED_FITS
    tiger, lf = (board["systems"][s]["ami"] for s in ("tiger", "mgr-lf"))
    assert {k: v for k, v in tiger.items() if not k.startswith("fused")} == lf


def test_workers_take_each_systems_first_seed_then_the_longest_units():
    from mmgrec_core.compare import next_unit, units
    request = CompareRequest(DATASET, ("mmgrec", "tiger", "mgr-ef", "ease"), (0, 1), SETS)
    pending = units(request)
    assert pending == [(("ease",), (0, 1)), (("mmgrec",), (0,)), (("tiger", "mgr-ef"), (0,)),
                       (("mmgrec",), (1,)), (("tiger", "mgr-ef"), (1,))]
    assert next_unit(pending, {"ease": 1.0, "mmgrec": 50.0}) == 2              # tiger not timed yet
    later = pending[3:]
    assert next_unit(later, {"mmgrec": 50.0, "tiger": 90.0}) == 1              # the longer system first
    assert next_unit(later, {"mmgrec": 50.0, "tiger": 20.0}) == 0


def test_a_system_that_fails_is_reported_and_the_others_are_kept(tmp_path, monkeypatch, capsys):
    real = compare_module.train_run

    def fail_tiger(path, config=None, **kwargs):
        if "tiger" in str(path):
            raise RuntimeError("out of memory")
        return real(path, config, **kwargs)

    monkeypatch.setattr(compare_module, "train_run", fail_tiger)
    code = main(["compare", "--dataset", DATASET, "--systems", "tiger,popularity", "--seeds", "0",
                 "--out", str(tmp_path), "--set", *SETS])
    assert code == 1
    assert "tiger failed (seed 0: RuntimeError: out of memory)" in capsys.readouterr().err
    board = read_leaderboard(tmp_path)
    assert list(board["systems"]) == ["popularity"] and "tiger" in board["failed"]


@pytest.mark.parametrize("argv, message", [
    (["--systems", "mmgrec,sasrec"], "unknown system 'sasrec'"),
    (["--systems", ""], "--systems is empty"),
    (["--systems", "mmgrec,mmgrec"], "names a system twice"),
    (["--systems", "mmgrec", "--seeds", "0,x"], "--seeds '0,x': expected comma-separated integers"),
    (["--systems", "mmgrec", "--set", "training.epochs=abc"], "training.epochs='abc': expected an integer"),
    (["--systems", "tiger", "--set", "tokenizer.cf_dim=8"], "unknown option 'tokenizer.cf_dim'"),
    (["--systems", "tiger", "--jobs", "0"], "--jobs 0: must be at least 1"),
])
def test_bad_input_is_one_line_before_any_work(argv, message, tmp_path, capsys):
    assert main(["compare", "--dataset", DATASET, "--out", str(tmp_path / "c"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c").exists()


def test_another_comparison_in_the_same_directory_is_refused(finished):
    out, request, _ = finished
    with pytest.raises(RunError, match="holds a comparison"):
        compare(out, CompareRequest("demo:items=90,users=100", request.systems, (0,), SETS))
