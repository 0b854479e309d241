"""`torchrun --nproc_per_node 2` (gloo, CPU) against one process: same run, written once, and a killed rank."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.filterwarnings("ignore::mmgrec_core.data.dataset.DatasetWarning")

# Dropout 0: with it, each rank draws its own masks for its own rows, and the runs could only agree loosely.
TINY = {"dataset": "demo:items=120,users=150,seed=5", "seed": 3,
        "tokenizer": {"codebook_size": 8, "steps": 100, "polish_steps": 30},
        "generator": {"dim": 16, "dropout": 0.0},
        "training": {"epochs": 4, "eval_every": 1, "patience": 10, "valid_users": 50, "batch_size": 16},
        "baselines": ["popularity"]}
RUN_FILES = {"config.json", "rec_ids.parquet", "tokenizer_stats.json", "tokenizer.safetensors",
             "representations.safetensors", "generator.safetensors", "history.csv", "metrics.json",
             "baseline_recs.safetensors"}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def train(tmp: Path, out: str, procs: int, *args: str, **popen) -> subprocess.Popen:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs)]
                if procs > 1 else [sys.executable])
    return subprocess.Popen([*launcher, "-m", "mmgrec_core", "train", *args, *(["--out", out] if out else [])],
                            cwd=tmp, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def finish(proc: subprocess.Popen, timeout: int = 300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    (tmp / "tiny.json").write_text(json.dumps(TINY))
    finish(train(tmp, "one", 1, "--config", "tiny.json"))
    log = finish(train(tmp, "two", 2, "--config", "tiny.json"))
    return tmp, log


def history(run: Path) -> pd.DataFrame:
    frame = pd.read_csv(run / "history.csv")
    return frame[frame["stage"] == "generator"].set_index("epoch")


def test_two_processes_write_one_complete_run_once(runs):
    tmp, log = runs
    assert {p.name for p in (tmp / "two").iterdir()} == RUN_FILES       # no checkpoint or temporary file left
    assert history(tmp / "two").index.tolist() == [1, 2, 3, 4]           # each epoch recorded once, by rank 0
    assert log.count("wrote run two") == 1 and "2 processes" in log


def test_two_processes_train_the_one_process_run(runs):
    """Every rank draws the whole global batch and keeps its rows; the weighted gradient average is the one-
    process step up to float rounding: losses within 1e-5, validation metrics within 0.01 (equal here)."""
    tmp, _ = runs
    one, two = history(tmp / "one"), history(tmp / "two")
    assert (one["loss"] - two["loss"]).abs().max() < 1e-5
    valid = [c for c in one.columns if c.startswith("valid_")]
    assert (one[valid] - two[valid]).abs().max().max() < 0.01
    test_one, test_two = (json.loads((tmp / r / "metrics.json").read_text())["models"]["mmgrec"]["test"]
                          for r in ("one", "two"))
    assert all(abs(test_one[k] - test_two[k]) < 0.01 for k in test_one)


def test_a_killed_rank_stops_the_job_with_a_clear_message_and_resume_finishes(runs):
    tmp, _ = runs
    config = {**TINY, "training": {**TINY["training"], "epochs": 60, "patience": 60, "eval_every": 20}}
    (tmp / "long.json").write_text(json.dumps(config))
    job = train(tmp, "killed", 2, "--config", "long.json")
    checkpoint = tmp / "killed" / "checkpoint.pt"
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert checkpoint.exists(), "no checkpoint appeared"
    os.kill(rank_pid(job.pid, 1), signal.SIGKILL)
    out, _ = job.communicate(timeout=120)
    assert job.returncode != 0
    assert "ChildFailedError" in out and "exitcode  : -9" in out                 # torchrun names the dead rank
    assert not (tmp / "killed" / "metrics.json").exists()
    log = finish(train(tmp, None, 2, "--resume", "killed"), timeout=600)
    assert "wrote run killed" in log
    assert {p.name for p in (tmp / "killed").iterdir()} == RUN_FILES
    assert history(tmp / "killed").index.tolist() == list(range(1, 61))


def rank_pid(launcher: int, rank: int) -> int:
    """The pid of the worker torchrun started with RANK=rank."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
            stat = (proc / "stat").read_text().split()
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ and int(stat[3]) == launcher:                # a child of torchrun
            return int(proc.name)
    raise AssertionError(f"no worker with RANK={rank}")
