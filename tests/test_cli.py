import json
import subprocess
import sys

import pytest

from mmgrec_core.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::mmgrec_core.data.dataset.DatasetWarning")
SPEC = "demo:items=120,users=90,seed=2"


def test_baselines_writes_metrics_json_of_the_agreed_shape(tmp_path, capsys):
    assert main(["baselines", "--dataset", SPEC, "--out", str(tmp_path), "--models", "popularity,ease"]) == 0
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["dataset"] == SPEC
    assert set(report["counts"]) == {"users", "items", "train", "valid", "test"}
    assert report["k"] == [5, 10, 20]
    assert set(report["models"]) == {"popularity", "ease"}
    for m in report["models"].values():
        assert {"valid", "test", "train_seconds", "setting"} <= set(m) <= {"valid", "test", "train_seconds",
                                                                           "setting", "tuning", "tune_seconds"}
        assert set(m["test"]) == {f"{metric}@{k}" for metric in ("recall", "ndcg") for k in (5, 10, 20)} | {
            "top1_share"}
    assert "ease" in capsys.readouterr().out


def test_a_second_call_adds_models_to_the_same_file(tmp_path):
    main(["baselines", "--dataset", SPEC, "--out", str(tmp_path), "--models", "popularity"])
    main(["baselines", "--dataset", SPEC, "--out", str(tmp_path), "--models", "ease"])
    assert set(json.loads((tmp_path / "metrics.json").read_text())["models"]) == {"popularity", "ease"}


@pytest.mark.parametrize("spec, words", [("demo:nope=1", "unknown option"),
                                         ("mmrec:/no/such/dir", "not found"),
                                         ("imdb", "unknown dataset")])
def test_bad_dataset_exits_2_with_one_clear_line(tmp_path, spec, words):
    proc = subprocess.run([sys.executable, "-m", "mmgrec_core", "baselines", "--dataset", spec,
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert words in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_unknown_model_is_refused(tmp_path, capsys):
    assert main(["baselines", "--dataset", SPEC, "--out", str(tmp_path), "--models", "svd"]) == 2
    assert "unknown ['svd']" in capsys.readouterr().err


def test_baselines_without_out_prints_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["baselines", "--dataset", SPEC, "--models", "popularity"]) == 0
    out = capsys.readouterr().out
    assert "popularity" in out and "wrote" not in out
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_during_train_says_how_to_resume_instead_of_a_traceback(tmp_path, capsys, monkeypatch):
    import mmgrec_core.pipeline as pipeline

    def interrupted(out, config=None, **_):
        (out / "config.json").parent.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "train_run", interrupted)
    assert main(["train", "--dataset", SPEC, "--out", str(tmp_path / "run")]) == 130
    assert f"train --resume {tmp_path / 'run'}" in capsys.readouterr().err


@pytest.mark.parametrize("system", ["mmgrec", "tiger", "bbqrec"])
def test_the_tokenizer_bar_total_counts_the_reports_its_fit_makes(system):
    """The CLI's tokenizer bar ends at its total: BBQRec reports its polish steps too, the RQ-VAEs do not."""
    from mmgrec_core.cli import _tokenizer_reports
    from mmgrec_core.config import resolve
    from mmgrec_core.data.loaders import load_dataset
    from mmgrec_core.runs import make_run_tokenizer

    config = resolve({"system": system, "dataset": "demo:items=100,users=120,seed=4"},
                     ["tokenizer.steps=200", "tokenizer.polish_steps=100", "tokenizer.codebook_size=8"])
    reports = []
    make_run_tokenizer(config).fit(load_dataset(config.dataset), lambda step, info: reports.append(step),
                                   collision=config.tokenizer.collision, seed=0)
    assert len(reports) == _tokenizer_reports(config) == (3 if system == "bbqrec" else 2)
