"""End-to-end: a tiny world through tokenizer, generator, evaluation and the run directory, in seconds."""

import json

import pytest
import torch

from mmgrec_core.cli import main
from mmgrec_core.files import read_json
from mmgrec_core.pipeline import train_run
from mmgrec_core.runs import RunError, load_run, load_tensors

pytestmark = pytest.mark.filterwarnings("ignore::mmgrec_core.data.dataset.DatasetWarning")

TINY = {"dataset": "demo:items=120,users=150,seed=5", "seed": 3,
        "tokenizer": {"codebook_size": 8, "steps": 100, "polish_steps": 30},
        "generator": {"dim": 16}, "training": {"epochs": 3, "eval_every": 1, "patience": 10, "valid_users": 50},
        "baselines": ["popularity"]}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train_run(out, TINY)
    return out


def test_run_directory_holds_every_file_and_metrics_in_the_shared_format(run_dir):
    for name in ("config.json", "rec_ids.parquet", "tokenizer_stats.json", "tokenizer.safetensors",
                 "representations.safetensors", "generator.safetensors", "history.csv", "metrics.json"):
        assert (run_dir / name).exists(), name
    metrics = read_json(run_dir / "metrics.json")
    assert set(metrics["models"]) == {"popularity", "mmgrec"}
    assert metrics["k"] == [5, 10, 20] and metrics["counts"]["items"] == 120
    for split in ("valid", "test"):
        expected = {f"{m}@{k}" for m in ("recall", "ndcg") for k in (5, 10, 20)} | {"top1_share"}
        assert set(metrics["models"]["mmgrec"][split]) == expected
    stats = read_json(run_dir / "tokenizer_stats.json")
    assert stats["unique"] and stats["levels"] == 3 and stats["codebook"] == 8


def test_load_run_recommends_what_was_evaluated(run_dir):
    run = load_run(run_dir)
    assert run.tokenizer is not None and run.table.num_items == 120
    assert set(run.history["stage"]) == {"tokenizer", "generator"}
    recs = run.recommender.recommend(torch.arange(run.data.num_users), 10).numpy()
    train = run.data.matrix("train").toarray().astype(bool)
    assert (recs >= 0).all() and not train[torch.arange(len(recs))[:, None].numpy(), recs].any()
    assert set(run.baseline_recs) == {"popularity"} and run.baseline_recs["popularity"].shape == (150, 20)


def test_resume_after_a_kill_ends_like_an_uninterrupted_run(run_dir, tmp_path):
    class Killed(Exception):
        pass

    def kill_at_epoch_2(stage, step, info):
        if stage == "generator" and step == 2:
            raise Killed

    with pytest.raises(Killed):
        train_run(tmp_path, TINY, progress=kill_at_epoch_2)
    assert not (tmp_path / "generator.safetensors").exists() and (tmp_path / "checkpoint.pt").exists()
    with pytest.raises(RunError, match="did not finish|missing"):
        load_run(tmp_path)
    (tmp_path / ".generator.safetensors.0123abcd.tmp").write_bytes(b"half a file")   # a write killed midway
    train_run(tmp_path, resume=True)
    assert not list(tmp_path.glob(".*.tmp"))
    ours, theirs = load_tensors(tmp_path / "generator.safetensors"), load_tensors(run_dir / "generator.safetensors")
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    a, b = read_json(tmp_path / "metrics.json"), read_json(run_dir / "metrics.json")
    assert a["models"]["mmgrec"]["test"] == b["models"]["mmgrec"]["test"]


@pytest.mark.parametrize("stage, step", [("tokenizer", 100), ("generator", 1), ("generator", 3), ("baselines", 0),
                                         ("network_weight", 0)])
def test_a_kill_at_any_stage_then_resume_ends_identical(run_dir, tmp_path, monkeypatch, stage, step):
    """Killed during the tokenizer, before the first or after the last generator checkpoint, as the baselines
    start, or while beta is chosen (the trained weights written, beta not yet): --resume ends with the weights and
    metrics of the uninterrupted run."""
    import mmgrec_core.pipeline as pipeline

    class Killed(Exception):
        pass

    def kill(at_stage, at_step, info):
        if at_stage == stage and at_step == step:
            raise Killed

    def killed_baseline(*args, **kwargs):
        raise Killed

    with monkeypatch.context() as m:
        if stage == "baselines":
            m.setattr(pipeline, "train_baseline", killed_baseline)
        if stage == "network_weight":
            m.setattr(pipeline, "choose_network_weight", killed_baseline)
        with pytest.raises(Killed):
            train_run(tmp_path, TINY, progress=kill)
    train_run(tmp_path, resume=True)
    ours, theirs = load_tensors(tmp_path / "generator.safetensors"), load_tensors(run_dir / "generator.safetensors")
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    a, b = read_json(tmp_path / "metrics.json"), read_json(run_dir / "metrics.json")
    for name in ("mmgrec", "popularity"):
        assert a["models"][name]["test"] == b["models"][name]["test"], name


def test_the_network_weight_is_the_best_on_validation_and_saved_with_the_weights(run_dir):
    entry = read_json(run_dir / "metrics.json")["models"]["mmgrec"]
    trials = entry["tuning"]
    assert [t["network_weight"] for t in trials] == [1.0, 0.75, 0.5, 0.25]
    best = max(trials, key=lambda t: t["valid_ndcg@10"])            # max keeps the first, i.e. the larger beta
    assert entry["network_weight"] == best["network_weight"]
    assert best["valid_ndcg@10"] == round(entry["valid"]["ndcg@10"], 4)    # chosen on the whole validation split
    assert load_tensors(run_dir / "generator.safetensors")["network_weight"].item() == best["network_weight"]
    assert load_run(run_dir).model.network_weight.item() == best["network_weight"]


def test_a_second_train_into_the_same_directory_is_refused(run_dir):
    with pytest.raises(RunError, match="already holds a run"):
        train_run(run_dir, TINY)


def test_cli_recommend_json(run_dir, capsys):
    assert main(["recommend", "--run", str(run_dir), "--user", "4", "--k", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["user"] == 4 and len(out["items"]) == len(out["names"]) == len(out["rec_ids"]) == len(out["scores"]) == 5
    assert out["scores"] == sorted(out["scores"], reverse=True)
    run = load_run(run_dir)
    assert [run.table.item_of(tuple(r)) for r in out["rec_ids"]] == out["items"]
    assert main(["recommend", "--run", str(run_dir), "--user", "4", "--k", "5"]) == 0
    table = capsys.readouterr().out                                   # Rec-IDs written as in the app: 3-1-0-0
    assert "-".join(map(str, out["rec_ids"][0])) in table and "(" not in table


@pytest.mark.parametrize("args, message", [
    (["recommend", "--run", "nowhere", "--user", "1"], "no such run directory"),
    (["train", "--out", "x", "--set", "nonsense=1"], "unknown option"),
    (["train", "--out", "x", "--set", "pe=rotary"], "pe='rotary': must be one of"),
    (["train", "--out", "x", "--set", "tokenizer.name=bpe"], "tokenizer.name='bpe': must be one of"),
    (["train", "--out", "x", "--set", "lr=1e-3"], "ambiguous: write tokenizer.lr or training.lr"),
    (["train", "--out", "x", "--set", "training.epochs=abc"], "expected an integer"),
    (["train", "--out", "x", "--set", "training.lr=-1"], "lr=-1.0: must be a number > 0"),
])
def test_cli_errors_are_one_line_and_exit_2(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                               # a case that wrongly trains writes nowhere that matters
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_recommend_unknown_user(run_dir, capsys):
    assert main(["recommend", "--run", str(run_dir), "--user", "99999"]) == 2
    assert "not in" in capsys.readouterr().err


def test_cli_train_with_config_file_and_settings(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**TINY, "baselines": []}))
    out = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(out), "--set", "pe=none", "training.epochs=1",
                 "--set", "collision=random"]) == 0                              # one flag, several values, or many
    saved = read_json(out / "config.json")
    assert saved["generator"]["pe"] == "none" and saved["training"]["epochs"] == 1
    assert saved["tokenizer"]["collision"] == "random" and saved["dataset"] == TINY["dataset"]
    assert "mmgrec" in capsys.readouterr().out
    assert main(["train", "--resume", str(out), "--set", "pe=relation"]) == 2       # a resume changes nothing


def test_weights_from_another_architecture_are_a_clear_error(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(run_dir, copy)
    weights = load_tensors(copy / "generator.safetensors")
    weights.pop("user_proj.weight")
    from mmgrec_core.runs import save_tensors
    save_tensors(copy / "generator.safetensors", weights)
    with pytest.raises(RunError, match="does not match this version"):
        load_run(copy)


def test_a_truncated_weights_file_is_a_clear_error(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "cut"
    shutil.copytree(run_dir, copy)
    data = (copy / "generator.safetensors").read_bytes()
    (copy / "generator.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(RunError, match="cannot be read"):
        load_run(copy)
