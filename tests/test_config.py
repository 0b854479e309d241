import dataclasses
import json

import pytest

from mmgrec_core.config import FORMAT, RunConfig, RunError, from_json, resolve
from mmgrec_core.rundir import RunDir
from mmgrec_core.tokenizers import config_class


def test_defaults_round_trip_through_json_with_every_field():
    config = RunConfig()
    stored = json.loads(json.dumps(config.to_dict()))
    assert stored["format"] == FORMAT
    tokenizer_fields = {f.name for f in dataclasses.fields(config_class("graph_rqvae"))}
    assert tokenizer_fields | {"name", "collision"} == set(stored["tokenizer"])    # how the tokenizer trains
    assert from_json(stored, "config.json") == config


def test_keys_resolve_against_the_schema():
    config = resolve({"tokenizer": {"name": "rqvae"}}, ["pe=none", "collision=random", "steps=50", "beam=30",
                                                        "training.epochs=3", "baselines=popularity,ease"])
    assert config.generator.pe == "none" and config.tokenizer.collision == "random"
    assert config.tokenizer.options.steps == 50 and config.decoding.beam == 30 and config.training.epochs == 3
    assert config.baselines.models == ("popularity", "ease")
    for written in ("[mf,ease]", '["mf", "ease"]', "mf, ease"):
        assert resolve(sets=[f"baselines.models={written}"]).baselines.models == ("mf", "ease")
    assert resolve(sets=["baselines=[]"]).baselines.models == ()
    assert resolve(sets=["tokenizer.name=late_fusion", "separator=true"]).tokenizer.options.separator is True


@pytest.mark.parametrize("sets, message", [
    (["lr=1e-3"], "ambiguous: write tokenizer.lr or training.lr"),
    (["separator=true"], "unknown option 'separator'"),            # only late_fusion has separators
    (["epochs=0.5"], "training.epochs=0.5: expected an integer"),
    (["tokenizer.epochs=5"], "unknown option 'tokenizer.epochs'"),
    (["training.epochs=abc"], "expected an integer"),
    (["training.epochs=2.5"], "expected an integer"),
    (["training.lr=-1"], "lr=-1.0: must be a number > 0"),
    (["levels=0"], "levels=0: must be a number > 0"),
    (["generator.dim=15"], "divisible by heads"),
    (["seed=-1"], "seed=-1: must be an integer"),
    (["dropout=1.5"], "dropout=1.5: must lie in"),
    (["baselines.tune=maybe"], "expected true or false"),
    (["baselines=svd"], "unknown ['svd']"),
    (["nonsense"], "expects KEY=VALUE"),
])
def test_bad_settings_name_the_key_and_what_is_allowed(sets, message):
    with pytest.raises(RunError, match=None) as err:
        resolve(sets=sets)
    assert message in str(err.value)


def test_a_file_with_unknown_keys_or_wrong_types_is_refused():
    with pytest.raises(RunError, match="unknown key 'generatr'"):
        resolve({"generatr": {}})
    with pytest.raises(RunError, match="unknown option training.epoch"):
        resolve({"training": {"epoch": 3}})
    with pytest.raises(RunError, match="training.epochs='3': expected an integer"):
        resolve({"training": {"epochs": "3"}})


def test_a_run_of_an_older_format_gets_a_clear_message(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"dataset": "demo", "generator": {"lr": 0.002}}))
    with pytest.raises(RunError, match="older mmgrec"):
        RunDir(tmp_path).config()
    assert not RunDir(tmp_path).finished and "generator.safetensors" in RunDir(tmp_path).missing()


def test_a_run_stored_before_the_transition_tables_loads_without_them():
    stored = RunConfig().to_dict()
    del stored["generator"]["transition"]
    assert from_json(stored, "config.json").generator.transition is False
    assert RunConfig().generator.transition is True                   # new runs have them
