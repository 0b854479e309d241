"""Train: start a run from the app with live progress; it joins the run picker when done.

Training runs inside this page's script, so leaving the page stops it; the files written so far stay, and
`python -m mmgrec_core train --resume DIR` continues it. Longer runs belong on the command line.
"""

import re
import shlex
import time

import streamlit as st

from app import state
from mmgrec_core.baselines import MODELS
from mmgrec_core.data.dataset import DatasetError
from mmgrec_core.pipeline import train_run
from mmgrec_core.runs import RunError
from mmgrec_core.tokenizers import TOKENIZERS

st.title("Train a run")
folder = state.runs_dir()
st.markdown(f"A run goes to `{state.run_key(folder)}/NAME`. Small settings finish in a minute or two on a CPU; "
            "the same run from the command line:")

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
    tok_epochs = f.number_input("Tokenizer RQ-VAE steps", 1, 5_000, 300, key="train_tok_epochs")
    gen_epochs = g.number_input("Generator epochs", 1, 500, 5, key="train_gen_epochs")
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


if submitted:
    out = folder / name
    if not re.fullmatch(r"[\w.-]+", name):
        st.error("A run name may hold letters, digits, '.', '_' and '-' only.")
    elif out.exists():
        st.error(f"`{state.run_key(out)}` exists already: choose another name.")
    else:
        stages = ["tokenizer", "generator", *baselines]
        totals = {"tokenizer": max(int(tok_epochs), 1), "generator": max(int(gen_epochs), 1)}
        bar = st.progress(0.0, text="loading the dataset")
        started = time.perf_counter()

        def progress(stage: str, step: int, info: dict) -> None:
            i = stages.index(stage) if stage in stages else len(stages) - 1
            part = min(step / totals[stage], 1.0) if stage in totals else 0.5
            detail = ", ".join(f"{k} {v:.4g}" for k, v in info.items() if isinstance(v, int | float))
            bar.progress(min((i + part) / len(stages), 1.0),
                         text=f"{stage}: step {step} · {detail} · {time.perf_counter() - started:.0f} s")

        try:
            metrics = train_run(out, config, progress=progress)
        except (RunError, DatasetError, ValueError) as err:
            bar.empty()
            st.error(f"Training could not start or finish: {err}")
        else:
            bar.progress(1.0, text=f"done in {time.perf_counter() - started:.0f} s")
            test = metrics["models"]["mmgrec"]["test"]
            st.success(f"Run `{state.run_key(out)}` is ready: test Recall@10 {test.get('recall@10', 0):.3f}. "
                       "It is listed in the run picker.")
            st.button("Open it", on_click=open_new_run, args=(state.run_key(out),), type="primary")
