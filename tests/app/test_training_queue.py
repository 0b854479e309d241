"""The app's training queue: one child process at a time, bounded requests, failures kept to their own job."""

from __future__ import annotations

import json

import pytest

from app.training_queue import QueueError, TrainingQueue, check_request

SMALL = {"dataset": "demo:items=80,users=100,seed=4",
         "tokenizer": {"codebook_size": 8, "steps": 20, "polish_steps": 0},
         "generator": {"dim": 16}, "training": {"epochs": 1, "valid_users": 30}, "baselines": ["popularity"]}


def test_identical_submissions_at_once_run_one_after_the_other_and_give_identical_runs(tmp_path):
    queue = TrainingQueue()
    first = queue.submit("a", tmp_path / "a", SMALL)
    queue.submit("b", tmp_path / "b", SMALL)
    assert first.state == "running" and queue.job(tmp_path / "b").state == "waiting"
    queue.wait(timeout=300)
    a, b = queue.job(tmp_path / "a"), queue.job(tmp_path / "b")
    assert (a.state, b.state) == ("done", "done"), (a.error, b.error)
    assert b.started >= a.ended                                   # never two at once
    assert a.test == b.test and a.test["recall@10"] >= 0          # separate processes: no shared RNG
    assert set(a.baselines) == {"popularity"}
    metrics = [json.loads((tmp_path / n / "metrics.json").read_text())["models"]["mmgrec"]["test"] for n in "ab"]
    assert metrics[0] == metrics[1] == a.test


def test_a_full_queue_refuses_more_and_a_failing_job_does_not_stop_the_next(tmp_path):
    queue = TrainingQueue(max_waiting=1)
    bad = {**SMALL, "dataset": "movielens:min_count=x"}           # passes the bounds, fails in the child
    queue.submit("bad", tmp_path / "bad", bad)
    queue.submit("good", tmp_path / "good", SMALL)
    with pytest.raises(QueueError, match="waiting already"):
        queue.submit("third", tmp_path / "third", SMALL)
    with pytest.raises(QueueError, match="queued already"):
        queue.submit("good", tmp_path / "good", SMALL)
    queue.wait(timeout=300)
    assert queue.job(tmp_path / "bad").state == "failed"
    assert "min_count" in queue.job(tmp_path / "bad").error
    assert queue.job(tmp_path / "good").state == "done"


def test_a_job_past_the_time_limit_is_stopped(tmp_path):
    queue = TrainingQueue(max_seconds=2)
    queue.submit("slow", tmp_path / "slow", {**SMALL, "training": {"epochs": 50}})
    queue.wait(timeout=120)
    job = queue.job(tmp_path / "slow")
    assert job.state == "failed" and "limit" in job.error


@pytest.mark.parametrize("change, message", [
    ({"dataset": "mmrec:/etc"}, "CLI"),
    ({"dataset": "demo:items=500000"}, "at most"),
    ({"dataset": "demo:items=100000000"}, "items"),
    ({"dataset": "demo:seed=-1"}, "seed"),
    ({"training": {"epochs": 1000}}, "epochs"),
    ({"tokenizer": {"steps": 10**6}}, "steps"),
    ({"tokenizer": {"levels": 0}}, "levels"),
    ({"generator": {"dim": 15}}, "dim"),
])
def test_requests_beyond_the_apps_bounds_are_refused_before_anything_runs(change, message):
    with pytest.raises(QueueError, match=message):
        check_request({**SMALL, **change})
