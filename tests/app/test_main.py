"""AppTest: every page renders on the tiny run (and the shipped run when present); the key widgets work."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "assets" / "demo_run"

MAIN = str(ROOT / "app" / "main.py")
PAGES = ["views/overview.py", "views/recid_tree.py", "views/collisions.py", "views/codewords.py",
         "views/recommend.py", "views/explain.py", "views/compare.py", "views/train.py"]
TIMEOUT = 180            # the first Codewords render compiles UMAP's numba code


def app(**query) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=TIMEOUT)
    at.query_params.update(query)
    return at.run()


def texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "info", "warning", "error", "success", "caption")
                     for e in getattr(at, kind))


def check(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def top_lists(at: AppTest) -> list:
    """The top-K tables of the Recommend page (MMGRec first, then the baselines)."""
    return [d.value for d in at.dataframe if "hit" in d.value.columns]


def render_all(at: AppTest) -> None:
    check(at)
    for page in PAGES:
        at.switch_page(page).run()
        check(at)
        assert at.title, page
        assert not at.error, (page, [e.value for e in at.error])


def test_every_page_renders_on_the_tiny_run(app_env):
    at = app()
    assert at.sidebar.selectbox[0].value == str(app_env)
    assert [m.label for m in at.metric][:2] == ["users", "items"]
    assert at.metric[1].value == "120"
    render_all(at)


@pytest.mark.skipif(not (SHIPPED / "metrics.json").exists(), reason="assets/demo_run is not trained yet")
def test_every_page_renders_on_the_shipped_run(monkeypatch, tmp_path):
    monkeypatch.delenv("MMGREC_RUN", raising=False)
    monkeypatch.setenv("MMGREC_RUNS_DIR", str(tmp_path))
    at = app(run="assets/demo_run")
    assert at.sidebar.selectbox[0].value == "assets/demo_run"
    render_all(at)


def test_pick_a_user_shows_recommendations(app_env):
    at = app()
    at.switch_page("views/recommend.py").run()
    at.number_input(key="user_choice").set_value(7).run()
    check(at)
    assert at.query_params["user"] == ["7"] or at.query_params["user"] == "7"
    lists = top_lists(at)
    assert len(lists) == 2                                               # MMGRec and MF: the tiny run has no LightGCN
    assert "log_prob" in lists[0].columns and len(lists[0]) == 10
    assert lists[0]["name"].notna().all() and lists[0]["rec_id"].str.count("-").eq(3).all()
    assert "User **7**" in texts(at) and "**MF**" in texts(at)
    at.slider[0].set_value(5).run()
    assert len(top_lists(at)[0]) == 5
    at.button[0].click().run()                                         # random user
    check(at)


def test_pick_an_item_shows_its_explanation(app_env):
    at = app()
    at.switch_page("views/explain.py").run()
    at.number_input(key="item_choice").set_value(11).run()
    check(at)
    text = texts(at)
    assert "Level 1** chose codeword" in text and "smallest margin" in text
    at.text_input[0].set_value("#11").run()                            # search by name
    check(at)


def test_url_selects_user_and_item(app_env):
    at = app(user="3", item="5")
    at.switch_page("views/recommend.py").run()
    assert at.number_input(key="user_choice").value == 3
    at.switch_page("views/explain.py").run()
    assert at.number_input(key="item_choice").value == 5


@pytest.mark.parametrize("query", [{"user": "abc"}, {"user": "100000"}, {"item": "-3"}, {"item": "x"},
                                   {"run": "runs/nowhere"}])
def test_bad_query_params_give_a_message(app_env, query):
    at = app(**query)
    for page in ("views/recommend.py", "views/explain.py"):
        at.switch_page(page).run()
        check(at)
    at = app(**query)
    if "run" in query:                                   # the sidebar says so and falls back to the first run
        assert "was not found" in at.sidebar.warning[0].value
        assert at.query_params["run"] != query["run"]
        return
    at.switch_page("views/recommend.py" if "user" in query else "views/explain.py").run()
    check(at)
    assert at.warning, query
    assert "is not a" in at.warning[0].value


def test_unfinished_or_corrupt_run_gives_a_message(app_env, runs_folder):
    at = app(run=str(runs_folder / "broken"))
    at.sidebar.selectbox[0].set_value(str(runs_folder / "broken")).run()
    check(at)
    assert at.error and "cannot be opened" in at.error[0].value
    for page in [p for p in PAGES[1:-1] if p != "views/compare.py"]:          # Compare reads no run
        at.switch_page(page).run()
        check(at)
        assert at.error


def test_collisions_sweep_computes_with_progress(app_env):
    at = app()
    at.switch_page("views/collisions.py").run()
    assert any("not cached" in w.value for w in at.warning)
    at.multiselect(key="sweep_tokenizers").set_value(["rqvae"])
    at.multiselect(key="sweep_codebooks").set_value([16])
    at.multiselect(key="sweep_levels").set_value([2])
    at.number_input(key="sweep_steps").set_value(5)
    at.number_input(key="sweep_polish").set_value(0)
    at.run()
    at.button[0].click().run()
    check(at)
    sweep = [d.value for d in at.dataframe if "collision_rate" in d.value.columns]
    assert len(sweep) == 1 and len(sweep[0]) == 1
    assert sweep[0]["tokenizer"].tolist() == ["rqvae"]
    assert not any("not cached" in w.value for w in at.warning)          # the note goes once the result is there


def test_train_page_queues_a_run_into_the_runs_folder(app_env, runs_folder):
    at = app()
    at.switch_page("views/train.py").run()
    at.text_input(key="train_name").set_value("apptrained")
    at.text_input(key="train_dataset").set_value("demo:items=80,users=100,seed=2")
    at.number_input(key="train_codebook").set_value(8)
    at.number_input(key="train_tok_epochs").set_value(1)
    at.number_input(key="train_gen_epochs").set_value(1)
    at.selectbox(key="train_dim").set_value(16)
    at.button[0].click().run()
    check(at)
    deadline = time.monotonic() + 240                   # the run trains in a child process; the page polls it
    while not (at.success or at.error) and time.monotonic() < deadline:
        time.sleep(1)
        at.run()
        check(at)
    assert at.success, texts(at)
    metrics = json.loads((runs_folder / "apptrained" / "metrics.json").read_text())
    flagged = any("same first item" in w.value for w in at.warning)
    assert flagged == (metrics["models"]["mmgrec"]["test"]["top1_share"] >= 0.3), texts(at)
    at.run()
    assert any(o.endswith("apptrained") for o in at.sidebar.selectbox[0].options)


@pytest.mark.parametrize("dataset", ["mmrec:/etc", "demo:items=100000000", "demo:users=50000", "demo:zipf=nan"])
def test_train_page_refuses_what_the_server_must_not_run(app_env, runs_folder, dataset):
    at = app()
    at.switch_page("views/train.py").run()
    at.text_input(key="train_name").set_value("refused")
    at.text_input(key="train_dataset").set_value(dataset)
    at.button[0].click().run()
    check(at)
    assert at.error and "Not queued" in at.error[0].value, texts(at)
    assert not (runs_folder / "refused").exists()


def test_sidebar_offers_no_folder_and_the_runs_root_comes_from_the_command_line(app_env, monkeypatch, tmp_path):
    from app import state
    at = app()
    assert not at.sidebar.text_input                    # a visitor cannot point the app at another folder
    monkeypatch.setattr("sys.argv", ["app/main.py", "--runs", str(tmp_path)])
    assert state.runs_dir() == tmp_path.resolve()
    monkeypatch.setattr("sys.argv", ["app/main.py"])
    assert state.runs_dir() == Path(os.environ["MMGREC_RUNS_DIR"]).resolve()
    at = app(run=str(Path.home()))                      # a path outside the root is not a run to show
    assert "was not found" in at.sidebar.warning[0].value


def test_streamlit_serves_localhost_by_default():
    import tomllib
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "localhost"


INJECTION = "**bold** ![x](http://example.invalid/x.png) [link](http://example.invalid) <b>html</b>" + "x" * 500


def test_url_parameters_are_shown_as_plain_text(app_env):
    at = app(run=INJECTION)
    shown = at.sidebar.warning[0].value
    assert "was not found" in shown and len(shown) < 300          # capped
    for markup in ("**", "![", "](", "<b>", "http"):
        assert markup not in _outside_code(shown), (markup, shown)
    at = app(user=INJECTION)
    at.switch_page("views/recommend.py").run()
    check(at)
    for markup in ("**", "![", "](", "<b>", "http"):
        assert markup not in _outside_code(at.warning[0].value)


def _outside_code(markdown: str) -> str:
    """What markdown would act on: the message without its code spans."""
    return re.sub(r"`[^`]*`", "", markdown)


def test_no_runs_gives_a_message(monkeypatch, tmp_path):
    from app import state  # the module the app script imports, same process
    monkeypatch.setattr(state, "SHIPPED", tmp_path / "no_shipped_run")
    monkeypatch.setattr(state, "SHIPPED_COMPARE", tmp_path / "no_shipped_comparison")   # its runs are runs too
    monkeypatch.delenv("MMGREC_RUN", raising=False)
    monkeypatch.setenv("MMGREC_RUNS_DIR", str(tmp_path))
    at = app()
    check(at)
    assert at.info and "No run found" in at.info[0].value


def test_tree_and_codeword_options_all_render(app_env):
    at = app()
    at.switch_page("views/recid_tree.py").run()
    for kind in ("icicle", "treemap", "sunburst"):
        at.selectbox(key="tree_kind").set_value(kind)
        at.selectbox(key="tree_size").set_value("popularity").run()
        check(at)
    ids = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][-1]["ids"]
    assert all("/" not in i for i in ids)                         # first view: the first level only
    node = at.selectbox(key="node_c1").options[1].split()[0]
    at.selectbox(key="node_c1").set_value(int(node)).run()
    check(at)
    assert "items** under" in texts(at)
    ids = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][-1]["ids"]
    assert ids[0] == node and all(i.startswith(node + "/") for i in ids[1:])   # the chart follows the choice
    example = at.text_input(key="tree_search").placeholder.split(", or ")[1]
    at.text_input(key="tree_search").set_value(example).run()                  # the example Rec-ID prefix
    check(at)
    assert not any("No item matches" in i.value for i in at.info)
    at.switch_page("views/codewords.py").run()
    for view in at.selectbox(key="umap_view").options:
        at.selectbox(key="umap_view").set_value(view).run()
        check(at)
        for colour in at.selectbox(key="umap_colour").options:
            at.selectbox(key="umap_colour").set_value(colour).run()
            check(at)
    assert "Nothing selected yet" in texts(at)


def test_a_sweep_stored_with_the_run_is_shown_without_computing(app_env, tmp_path, monkeypatch):
    import shutil

    import pandas as pd

    run = tmp_path / "with_sweep"
    shutil.copytree(app_env, run)
    rows = [{"tokenizer": t, "levels": 3, "codebook": k, "collision_rate": 0.1, "unique_prefix_share": 0.9,
             "max_p": 2, "usage": 1.0, "perplexity": k / 2} for t in ("rqvae", "hkmeans") for k in (16, 32)]
    pd.DataFrame(rows).to_parquet(run / "sweep.parquet")
    monkeypatch.setenv("MMGREC_RUN", str(run))
    at = app()
    at.switch_page("views/collisions.py").run()
    check(at)
    assert not any("not cached" in w.value for w in at.warning)
    assert any("stored with this run" in c.value for c in at.caption)
    assert any(len(d.value) == 4 and "collision_rate" in d.value.columns for d in at.dataframe)


@pytest.mark.parametrize("tokenizer", ["rqvae", "hkmeans"])
def test_every_page_renders_for_other_tokenizers(tokenizer, tiny_config, tmp_path, monkeypatch):
    """rqvae explains through its own latents; hkmeans has no codebook trace: a message, an item map."""
    import warnings

    from mmgrec_core.pipeline import train_run

    config = {**tiny_config, "tokenizer": {"name": tokenizer, "codebook_size": 8, "polish_steps": 30,
                                    **({} if tokenizer == "hkmeans" else {"steps": 50})},
              "baselines": ["popularity"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train_run(tmp_path / tokenizer, config)
    monkeypatch.setenv("MMGREC_RUN", str(tmp_path / tokenizer))
    monkeypatch.setenv("MMGREC_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("MMGREC_CACHE", str(tmp_path / "cache"))
    at = app()
    render_all(at)
    at.switch_page("views/explain.py").run()
    if tokenizer == "hkmeans":
        assert "keeps no per-level codebook trace" in at.info[0].value
    else:
        assert "Level 1** chose codeword" in texts(at)


def _corrupt(path: Path, name: str) -> None:
    import torch
    from safetensors.torch import save_file
    if name == "metrics.json":
        (path / name).write_text(json.dumps({"dataset": 3, "k": "ten", "models": {"mmgrec": {"test": "abc"}}}))
    elif name == "tokenizer_stats.json":
        (path / name).write_text(json.dumps({"losses": "many", "collision_rate": [1, 2]}))
    else:
        save_file({"mf": torch.zeros(3, dtype=torch.int64)}, str(path / name))


@pytest.mark.parametrize("name", ["metrics.json", "tokenizer_stats.json", "baseline_recs.safetensors"])
def test_run_files_with_unexpected_content_give_messages_not_tracebacks(app_env, tiny_run, tmp_path, monkeypatch,
                                                                        name):
    import shutil
    bad = tmp_path / "bad"
    shutil.copytree(tiny_run, bad)
    _corrupt(bad, name)
    monkeypatch.setenv("MMGREC_RUN", str(bad))
    at = app()
    check(at)
    for page in PAGES:
        at.switch_page(page).run()
        check(at)
        assert at.title or at.error, page


@pytest.fixture(scope="module")
def compare_root(tmp_path_factory, tiny_config):
    """A runs root holding one small comparison: MMGRec on two seeds beside popularity."""
    import warnings

    from mmgrec_core.compare import CompareRequest, compare

    root = tmp_path_factory.mktemp("compare_root")
    sets = ["tokenizer.codebook_size=8", "tokenizer.steps=60", "tokenizer.polish_steps=20", "generator.dim=16",
            "training.epochs=1", "training.valid_users=30"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compare(root / "cmp", CompareRequest(tiny_config["dataset"], ("mmgrec", "popularity"), (0, 1), tuple(sets)))
    return root


def test_compare_page_shows_the_leaderboard_and_opens_a_system_run(compare_root, monkeypatch, tmp_path):
    monkeypatch.setattr("app.state.SHIPPED_COMPARE", tmp_path / "none")
    monkeypatch.delenv("MMGREC_RUN", raising=False)
    monkeypatch.setenv("MMGREC_RUNS_DIR", str(compare_root))
    monkeypatch.setenv("MMGREC_CACHE", str(tmp_path / "cache"))
    at = app()
    at.switch_page("views/compare.py").run()
    check(at)
    board = at.dataframe[0].value
    assert list(board["system"]) == ["mmgrec", "popularity"] and "±" in board["ndcg@10"].iloc[0]
    metric = next(s for s in at.selectbox if s.label == "Metric")
    metric.set_value("recall@20").run()
    check(at)
    assert "recall@20" in at.get("plotly_chart")[0].proto.spec
    buttons = [b for b in at.button if b.label.startswith("mmgrec, seed")]
    assert [b.label for b in buttons] == ["mmgrec, seed 0", "mmgrec, seed 1"]
    buttons[1].click().run()
    check(at)
    assert at.sidebar.selectbox[0].value == str(compare_root / "cmp" / "runs" / "mmgrec-seed1")


def test_compare_page_without_comparisons_says_how_to_make_one(app_env, monkeypatch, tmp_path):
    monkeypatch.setattr("app.state.SHIPPED_COMPARE", tmp_path / "none")
    at = app()
    at.switch_page("views/compare.py").run()
    check(at)
    assert "python -m mmgrec_core compare" in texts(at)


@pytest.mark.skipif(not (ROOT / "assets" / "demo_compare" / "leaderboard.json").exists(),
                    reason="assets/demo_compare is not there")
def test_compare_page_on_the_shipped_comparison(monkeypatch, tmp_path):
    monkeypatch.delenv("MMGREC_RUN", raising=False)
    monkeypatch.setenv("MMGREC_RUNS_DIR", str(tmp_path))
    at = app()
    at.switch_page("views/compare.py").run()
    check(at)
    assert not at.error and "mmgrec" in list(at.dataframe[0].value["system"])
    assert any(b.label.startswith("mmgrec, seed") for b in at.button)
