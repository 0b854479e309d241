"""Trainings started from the app: one at a time, each in its own process, the others waiting in order.

Why a process: a training inside the server's script would share the server's memory, cores and global RNG with
every visitor (four identical submissions at once gave four different models), could not be stopped, and one
crash would take the page with it. Here the server keeps one `TrainingQueue` (`st.cache_resource`); a child
process trains a run and reports its progress as JSON lines on stdout, and the next job starts when it ends. A
visitor who leaves the page does not stop their run. What a visitor may ask for is bounded (`check_request`), and
a job that runs past `MAX_SECONDS` is stopped.

    python -m app.training_queue OUT CONFIG_JSON      # the child; the app starts it, not people
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_WAITING = 3                  # jobs queued behind the running one; more are refused with a message
MAX_SECONDS = 3600               # a job running longer is stopped
MAX_ITEMS = MAX_USERS = 20_000   # demo worlds a visitor may generate (the CLI has no such bound)
MAX_EPOCHS = 100
MAX_STEPS = 5_000


class QueueError(ValueError):
    """A request the queue refuses, with a message for the visitor."""


@dataclass(frozen=True)
class Job:
    """One training: what was asked, and where it stands (`state`: waiting -> running -> done | failed)."""

    name: str
    out: Path
    config: dict
    state: str = "waiting"
    fraction: float = 0.0            # of the whole run, 0..1
    text: str = "waiting for the trainings before it"
    test: dict = field(default_factory=dict)   # MMGRec's test metrics when done
    baselines: dict = field(default_factory=dict)   # each baseline's test metrics when done
    error: str = ""
    started: float | None = None
    ended: float | None = None

    @property
    def active(self) -> bool:
        return self.state in ("waiting", "running")


def check_request(config: dict) -> None:
    """Refuse what the app must not run for a visitor: datasets read from server paths, worlds or trainings
    too large for a shared machine. Raises QueueError naming the value and what is allowed."""
    from mmgrec_core.config import resolve
    from mmgrec_core.data.loaders import demo_config

    spec = str(config.get("dataset", "demo"))
    kind = spec.partition(":")[0]
    if kind not in ("demo", "movielens"):
        raise QueueError(f"dataset {spec[:80]!r}: the app trains on demo[:k=v,...] or movielens; "
                         "datasets read from files are trained with the CLI")
    try:
        world = demo_config(spec) if kind == "demo" else None
        resolved = resolve(config, source="the Train form")
    except ValueError as e:                              # DatasetError and RunError are ValueErrors
        raise QueueError(str(e)) from None
    if world is not None and (world.items > MAX_ITEMS or world.users > MAX_USERS):
        raise QueueError(f"dataset {spec[:80]!r}: the app generates at most {MAX_ITEMS} items and "
                         f"{MAX_USERS} users; train larger worlds with the CLI")
    if resolved.training.epochs > MAX_EPOCHS:
        raise QueueError(f"generator epochs={resolved.training.epochs}: the app trains at most {MAX_EPOCHS}")
    steps = getattr(resolved.tokenizer.options, "steps", 0)
    if steps > MAX_STEPS:
        raise QueueError(f"tokenizer steps={steps}: the app trains at most {MAX_STEPS}")


class TrainingQueue:
    """Runs submitted jobs one at a time in child processes; safe to call from every session's thread."""

    def __init__(self, max_waiting: int = MAX_WAITING, max_seconds: float = MAX_SECONDS):
        self.max_waiting, self.max_seconds = max_waiting, max_seconds
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}          # by run path, in submission order

    def submit(self, name: str, out: Path, config: dict) -> Job:
        """Queue a training of `config` into `out`; starts it at once when nothing else runs."""
        check_request(config)
        key = str(out)
        with self._lock:
            if key in self._jobs and self._jobs[key].active:
                raise QueueError(f"a training into {name} is queued already")
            waiting = sum(j.state == "waiting" for j in self._jobs.values())
            if waiting >= self.max_waiting:
                raise QueueError(f"{waiting} trainings are waiting already; submit again when one has finished")
            self._jobs.pop(key, None)
            self._jobs[key] = Job(name=name, out=out, config=config)
            self._start_next()
            return self._jobs[key]

    def jobs(self) -> list[Job]:
        """Every job this server has seen, oldest first (jobs are immutable snapshots)."""
        with self._lock:
            return list(self._jobs.values())

    def job(self, out: Path) -> Job | None:
        with self._lock:
            return self._jobs.get(str(out))

    def wait(self, timeout: float) -> None:
        """Block until no job is active (tests and scripts)."""
        end = time.monotonic() + timeout
        while any(j.active for j in self.jobs()):
            if time.monotonic() > end:
                raise TimeoutError(f"trainings still running after {timeout} s")
            time.sleep(0.2)

    # ---- internals (called with the lock held, or from a job's watcher thread) --------------------------------

    def _update(self, job: Job, **changes) -> None:
        self._jobs[str(job.out)] = replace(self._jobs[str(job.out)], **changes)

    def _start_next(self) -> None:
        if any(j.state == "running" for j in self._jobs.values()):
            return
        job = next((j for j in self._jobs.values() if j.state == "waiting"), None)
        if job is None:
            return
        errors = tempfile.TemporaryFile(mode="w+")             # a file, not a pipe: it can never fill up
        proc = subprocess.Popen([sys.executable, "-m", "app.training_queue", str(job.out), json.dumps(job.config)],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=errors, text=True)
        self._update(job, state="running", started=time.time(), text="loading the dataset")
        threading.Thread(target=self._watch, args=(job, proc, errors), daemon=True).start()

    def _watch(self, job: Job, proc: subprocess.Popen, errors) -> None:
        timer = threading.Timer(self.max_seconds, proc.kill)
        timer.start()
        final: dict = {}
        for line in proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if not isinstance(message, dict):
                continue
            with self._lock:
                if "fraction" in message:
                    self._update(job, fraction=float(message["fraction"]), text=str(message.get("text", "")))
                else:
                    final = message
        proc.wait()
        timed_out = not timer.is_alive() and proc.returncode != 0
        timer.cancel()
        errors.seek(0)
        last = [line for line in errors.read().splitlines() if line.strip()]
        errors.close()
        with self._lock:
            if "test" in final:
                self._update(job, state="done", fraction=1.0, text="done", test=final["test"],
                             baselines=final.get("baselines", {}), ended=time.time())
            else:
                reason = (f"stopped after {self.max_seconds:.0f} s, the app's limit" if timed_out
                          else final.get("error") or (last[-1] if last else f"exit code {proc.returncode}"))
                self._update(job, state="failed", text="failed", error=str(reason)[:500], ended=time.time())
            self._start_next()


# ---- the child process ---------------------------------------------------------------------------------------

def _work(out: str, config_json: str) -> int:
    """Train one run, printing {"fraction", "text"} lines and a last {"test", "baselines"} or {"error"} line."""
    import warnings

    from mmgrec_core.config import resolve
    from mmgrec_core.data.dataset import DatasetError
    from mmgrec_core.pipeline import train_run
    from mmgrec_core.runs import RunError

    warnings.simplefilter("ignore")
    started, last = time.perf_counter(), [0.0]

    def say(message: dict) -> None:
        print(json.dumps(message), flush=True)

    try:
        config = resolve(json.loads(config_json), source="the Train form")
        stages = ["tokenizer", "generator", *config.baselines.models]
        totals = {"tokenizer": max(getattr(config.tokenizer.options, "steps", 0), 1),
                  "generator": max(config.training.epochs, 1)}

        def progress(stage: str, step: int, info: dict) -> None:
            now = time.perf_counter()
            if now - last[0] < 0.5:                            # at most two lines a second
                return
            last[0] = now
            i = stages.index(stage) if stage in stages else len(stages) - 1
            part = min(step / totals[stage], 1.0) if stage in totals else 0.5
            detail = ", ".join(f"{k} {v:.4g}" for k, v in info.items() if isinstance(v, int | float))
            say({"fraction": min((i + part) / len(stages), 1.0),
                 "text": f"{stage}: step {step} · {detail} · {now - started:.0f} s"})

        metrics = train_run(out, config, progress=progress)
    except (RunError, DatasetError, ValueError, MemoryError) as e:
        say({"error": str(e) or type(e).__name__})
        return 1
    models = metrics["models"]
    say({"test": models["mmgrec"]["test"],
         "baselines": {name: m["test"] for name, m in models.items() if not name.startswith("mmgrec")}})
    return 0


if __name__ == "__main__":
    sys.exit(_work(sys.argv[1], sys.argv[2]))
