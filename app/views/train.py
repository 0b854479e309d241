"""Train: queue a run from the app and watch it; it joins the run picker when done.

Runs train one at a time in a separate process (`app.training_queue`), so a visitor's run neither slows the
pages nor shares their random state; leaving the page does not stop it. What the form accepts is bounded; longer
runs and datasets read from files belong on the command line.
"""

import re
import shlex
import time

import pandas as pd
import streamlit as st

from app import state
from app.training_queue import MAX_EPOCHS, MAX_ITEMS, MAX_STEPS, QueueError, TrainingQueue
from mmgrec_core.baselines import MODELS
from mmgrec_core.tokenizers import TOKENIZERS

SAME_FIRST_ITEM = 0.3     # a top-1 shared by this share of the test users flags a run as barely personalised


@st.cache_resource
def training_queue() -> TrainingQueue:
    """One queue per server, shared by every session."""
    return TrainingQueue()


st.title("Train a run")
folder = state.runs_dir()
st.markdown(f"A run goes to `{state.run_key(folder)}/NAME`. Small settings finish in a minute or two on a CPU; "
            f"runs train one at a time, the app's limits are {MAX_ITEMS} items, {MAX_STEPS} tokenizer steps and "
            f"{MAX_EPOCHS} generator epochs. The same run from the command line:")

with st.form("train"):
    a, b = st.columns(2)
    name = a.text_input("Run name", key="train_name", value=time.strftime("app-%Y%m%d-%H%M%S"))
    dataset = b.text_input("Dataset", key="train_dataset", value="demo:items=500,users=600",
                           help="`demo`, `demo:items=...,users=...`, `movielens`, `mmrec:DIR`, `mmgcn:DIR`")
    c, d, e = st.columns(3)
    tokenizer = c.selectbox("Tokenizer", TOKENIZERS)
    levels = d.number_input("Levels", 1, 6, 3)
    codebook = e.number_input("Codewords per level", 2, 1024, 32, key="train_codebook")
    f, g, h = st.columns(3)
    tok_epochs = f.number_input("Tokenizer RQ-VAE steps", 1, MAX_STEPS, 300, key="train_tok_epochs")
    gen_epochs = g.number_input("Generator epochs", 1, MAX_EPOCHS, 40, key="train_gen_epochs")
    dim = h.selectbox("Generator width", [16, 32, 64, 128], index=2, key="train_dim")
    baselines = st.multiselect("Baselines beside it", MODELS, default=["popularity"])
    submitted = st.form_submit_button("Train", type="primary")

config = {"dataset": dataset.strip(),
          "tokenizer": {"name": tokenizer, "levels": int(levels), "codebook_size": int(codebook),
                        **({} if tokenizer == "hkmeans" else {"steps": int(tok_epochs)})},
          "generator": {"dim": int(dim)},
          "training": {"epochs": int(gen_epochs)},
          "baselines": {"models": list(baselines)}}
sets = [f"{section}.{k}={v}" for section in ("tokenizer", "generator", "training")
        for k, v in config[section].items()] + [f"baselines={','.join(baselines)}"]
st.code(f"python -m mmgrec_core train --dataset {shlex.quote(config['dataset'])} --out "
        f"{shlex.quote(f'{state.run_key(folder)}/{name}')} " + " ".join(f"--set {shlex.quote(s)}" for s in sets),
        language="bash")


def open_new_run(key: str) -> None:
    st.session_state["run_choice"] = key


queue = training_queue()
if submitted:
    out = folder / name
    if not re.fullmatch(r"[\w.-]{1,80}", name) or name.startswith("."):
        st.error("A run name holds 1 to 80 letters, digits, '.', '_' and '-', and does not start with '.'.")
    elif out.exists():
        st.error(f"`{state.run_key(out)}` exists already: choose another name.")
    else:
        try:
            queue.submit(name, out, config)
        except QueueError as err:
            st.error(f"Not queued: {state.plain(str(err), 300)}")
        else:
            st.session_state["train_job"] = str(out)
            ahead = sum(j.active for j in queue.jobs()) - 1
            st.toast(f"Queued {name}" + (f" behind {ahead} other training(s)" if ahead else "; it starts now"))


def show_queue() -> None:
    """The server's trainings: the running one with its progress, those waiting, those finished."""
    jobs = queue.jobs()
    mine = queue.job(st.session_state["train_job"]) if "train_job" in st.session_state else None
    for job in jobs:
        if job.state == "running":
            st.progress(job.fraction, text=f"{job.name}: {job.text}")
    if jobs:
        st.dataframe(pd.DataFrame({
            "run": [j.name for j in jobs], "state": [j.state for j in jobs],
            "seconds": [round((j.ended or time.time()) - j.started) if j.started else None for j in jobs],
            "test recall@10": [j.test.get("recall@10") for j in jobs]}), hide_index=True)
    if mine is not None and not mine.active and st.session_state.get("train_shown") != str(mine.out):
        st.session_state["train_shown"] = str(mine.out)
        st.rerun()                                   # the whole page, to show the result below


active = any(j.active for j in queue.jobs())
st.subheader("Trainings on this server")
st.fragment(show_queue, run_every=2 if active else None)()

mine = queue.job(st.session_state["train_job"]) if "train_job" in st.session_state else None
if mine is not None and mine.state == "failed":
    st.error(f"Training {mine.name} failed: {state.plain(mine.error, 500)}")
elif mine is not None and mine.state == "done":
    key = state.run_key(mine.out)
    ours = mine.test.get("recall@10", 0.0)
    st.success(f"Run {state.plain(key)} is ready: test Recall@10 {ours:.3f}. It is listed in the run picker.")
    pop = mine.baselines.get("popularity", {}).get("recall@10")
    share = mine.test.get("top1_share", 0.0)
    signs = []
    if pop is not None and ours <= pop:
        signs.append(f"it does not beat popularity (Recall@10 {ours:.3f} vs {pop:.3f})")
    if share >= SAME_FIRST_ITEM:
        signs.append(f"it recommends the same first item to {share:.0%} of the test users")
    if signs:
        st.warning(f"This model has barely learnt to personalise: {'; '.join(signs)}. Train longer (more "
                   "generator epochs) or on a larger world.")
    st.button("Open it", on_click=open_new_run, args=(key,), type="primary")
