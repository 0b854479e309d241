"""The run configuration: one frozen, typed `RunConfig` for everything `train` does, and the one parser that turns
a `--config` file, `--set KEY=VALUE` settings and a stored `config.json` into it.

    RunConfig
      dataset     dataset spec (`data.loaders.load_dataset`)
      seed        the one seed every stage derives its randomness from
      system      the named preset the settings start from (`systems.SYSTEMS`: mmgrec, tiger, bbqrec, ...)
      tokenizer   name, collision token, and the named tokenizer's own options (`tokenizers.REGISTRY`)
      generator   the generator's architecture (`GeneratorConfig`)
      training    how the generator is trained (`TrainingConfig`)
      decoding    how Rec-IDs are generated (`DecodingConfig`)
      baselines   which baselines are trained beside it (`BaselinesConfig`)

A `system` (in the tree or as `--set system=NAME`) lays the tree over that system's preset first, so
`{"system": "tiger", "training": {"epochs": 5}}` is TIGER with 5 epochs.

A key is `section.field` (`training.epochs`, `tokenizer.name`) or a bare field that exactly one section has
(`pe`, `collision`, `beam`); a bare key that two sections have (`epochs`: tokenizer and training) is refused
with both candidates named. Values are checked against the field's type and range before any work starts.
`config.json` holds every field, resolved, and a format number, so a run describes itself completely.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .baselines import MODELS
from .generator.beam import DecodingConfig
from .generator.model import GeneratorConfig
from .recid import COLLISIONS
from .systems import SYSTEMS, with_preset
from .tokenizers import TOKENIZERS, config_class
from .train import TrainingConfig

FORMAT = 2          # config.json layout; runs written before this number was stored are format 1


class RunError(ValueError):
    """A run directory or configuration that cannot be used; the message says which file or key and why."""


@dataclass(frozen=True)
class TokenizerSection:
    """Which tokenizer, how collisions are ordered, and that tokenizer's own options (default: its defaults)."""

    name: str = "graph_rqvae"
    collision: str = "popularity"      # the collision token p: "popularity" (MMGRec) or "random" (TIGER)
    options: Any = None                # the config dataclass of `name` (see `tokenizers.REGISTRY`)

    def __post_init__(self):
        cls = config_class(self.name)                                     # ValueError naming the choices
        if self.options is None:
            object.__setattr__(self, "options", cls())
        elif type(self.options) is not cls:
            raise ValueError(f"tokenizer.options must be a {cls.__name__} for tokenizer {self.name!r}")
        if self.collision not in COLLISIONS:
            raise ValueError(f"tokenizer.collision={self.collision!r}: must be one of {', '.join(COLLISIONS)}")


@dataclass(frozen=True)
class BaselinesConfig:
    models: tuple[str, ...] = MODELS    # trained and evaluated on the same split, beside the generator
    tune: bool = True                   # MF / LightGCN: search `baselines.GRIDS` on this dataset's validation split

    def __post_init__(self):
        bad = [m for m in self.models if m not in MODELS]
        if bad:
            raise ValueError(f"baselines.models: unknown {bad}; choose from {', '.join(MODELS)}")


@dataclass(frozen=True)
class RunConfig:
    dataset: str = "demo"
    seed: int = 0
    system: str = "mmgrec"
    tokenizer: TokenizerSection = field(default_factory=TokenizerSection)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    baselines: BaselinesConfig = field(default_factory=BaselinesConfig)

    def __post_init__(self):
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2**31:
            raise ValueError(f"seed={self.seed!r}: must be an integer in [0, 2^31)")
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise ValueError(f"dataset={self.dataset!r}: must be a dataset spec such as demo or mmrec:DIR")
        if self.system not in SYSTEMS:
            raise ValueError(f"system={self.system!r}: must be one of {', '.join(SYSTEMS)}")
        if self.training.align_epochs and self.tokenizer.name != "late_fusion":
            raise ValueError(f"training.align_epochs={self.training.align_epochs}: the modality alignment needs "
                             f"tokenizer.name=late_fusion (got {self.tokenizer.name})")
        if self.training.align_epochs and self.generator.transition and self.generator.mixture:
            raise ValueError("training.align_epochs needs generator.transition=false (or mixture=false)")

    def to_dict(self) -> dict:
        """The JSON form of config.json: every field, sections as objects, the tokenizer's options inlined."""
        out = {"format": FORMAT, "dataset": self.dataset, "seed": self.seed, "system": self.system}
        for name in SECTIONS:
            out[name] = _section_dict(self, name)
        return out


SECTIONS = ("tokenizer", "generator", "training", "decoding", "baselines")
_SECTION_CLASSES = {"generator": GeneratorConfig, "training": TrainingConfig, "decoding": DecodingConfig,
                    "baselines": BaselinesConfig}
_TOP = {"dataset": str, "seed": int, "system": str}


def _section_dict(config: RunConfig, name: str) -> dict:
    if name == "tokenizer":
        t = config.tokenizer
        return {"name": t.name, "collision": t.collision, **_plain(dataclasses.asdict(t.options))}
    return _plain(dataclasses.asdict(getattr(config, name)))


def _plain(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def schema(tokenizer: str) -> dict[str, dict[str, type]]:
    """Field types of every section for tokenizer `tokenizer` (the tokenizer section depends on it)."""
    out = {"tokenizer": {"name": str, "collision": str, **_types(config_class(tokenizer))}}
    out.update({name: _types(cls) for name, cls in _SECTION_CLASSES.items()})
    return out


def _types(cls: type) -> dict[str, type]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


# ---- parsing ---------------------------------------------------------------------------------------------------

def resolve(config: Mapping | None = None, sets: Sequence[str] = (), *, source: str = "config") -> RunConfig:
    """A `RunConfig` from a partial (or whole) dict, then `key=value` settings applied in order.

    Raises RunError naming the key, the value and what is allowed, for unknown or ambiguous keys, values of the
    wrong type and values out of range.
    """
    config = dict(config or {})
    if config.get("format", FORMAT) != FORMAT:
        raise RunError(f"{source}: format {config.get('format')!r} is not this version's ({FORMAT})")
    config.pop("format", None)
    parsed = [_split(item) for item in sets]
    system = next((raw for key, raw in reversed(parsed) if key == "system"), config.get("system", "mmgrec"))
    if system not in SYSTEMS:
        raise RunError(f"{source}: system={system!r}: must be one of {', '.join(SYSTEMS)}")
    config = with_preset(system, config)
    name = _tokenizer_name(config, parsed, source)
    types = schema(name)
    tree: dict[str, dict] = {s: {} for s in SECTIONS}
    top: dict[str, Any] = {}
    for key, value in config.items():                     # a file or dict: typed values, sections as objects
        if key in _TOP:
            top[key] = _coerce(value, _TOP[key], key, source)
        elif key == "baselines" and isinstance(value, list | tuple):
            tree["baselines"]["models"] = _coerce(value, tuple[str, ...], "baselines.models", source)
        elif key in SECTIONS:
            if not isinstance(value, Mapping):
                raise RunError(f"{source}: {key} must be an object of {key}.* options, got {value!r}")
            for k, v in value.items():
                if k not in types[key]:
                    raise RunError(f"{source}: unknown option {key}.{k}" + _known(types[key], key, name))
                tree[key][k] = _coerce(v, types[key][k], f"{key}.{k}", source)
        else:
            raise RunError(f"{source}: unknown key {key!r}; the keys are "
                           f"{', '.join([*_TOP, *SECTIONS])}")
    for key, raw in parsed:                               # --set: strings, parsed by the field's type
        section, name_ = _locate(key, types)
        where = f"{section}.{name_}" if section else name_
        tp = types[section][name_] if section else _TOP[name_]
        value = _coerce(_parse_value(raw, tp), tp, where, f"--set {key}={raw}")
        (tree[section] if section else top)[name_] = value
    try:
        return _build(top, tree, name)
    except (TypeError, ValueError) as e:
        raise RunError(f"{source}: {e}") from None


def from_json(config: Mapping, source: str) -> RunConfig:
    """A stored config.json (format 2, every field) back as a `RunConfig`."""
    if not isinstance(config, Mapping) or config.get("format") != FORMAT:
        raise RunError(f"{source} was written by an older mmgrec (no config format {FORMAT}); train the run again")
    generator = config.get("generator")
    if isinstance(generator, Mapping):         # runs written before a field existed were trained without it
        absent = {k: False for k in ("transition", "cooccurrence") if k not in generator}
        config = {**config, "generator": {**generator, **absent}}
    return resolve(config, source=source)


def _build(top: dict, tree: dict[str, dict], name: str) -> RunConfig:
    tok = dict(tree["tokenizer"])
    tok.pop("name", None)
    collision = tok.pop("collision", "popularity")
    options = config_class(name)(**tok)
    sections = {s: _SECTION_CLASSES[s](**tree[s]) for s in _SECTION_CLASSES}
    return RunConfig(**top, tokenizer=TokenizerSection(name, collision, options), **sections)


def _split(item: str) -> tuple[str, str]:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise RunError(f"--set expects KEY=VALUE, got {item!r}")
    return key.strip(), raw.strip()


def _tokenizer_name(config: Mapping, parsed: list[tuple[str, str]], source: str) -> str:
    """The tokenizer the settings end with: its options decide which tokenizer.* keys exist."""
    section = config.get("tokenizer", {})
    name = section.get("name", TokenizerSection.name) if isinstance(section, Mapping) else TokenizerSection.name
    for key, raw in parsed:
        if key in ("tokenizer.name", "name"):
            name = raw
    if name not in TOKENIZERS:
        raise RunError(f"{source}: tokenizer.name={name!r}: must be one of {', '.join(TOKENIZERS)}")
    return name


def _locate(key: str, types: dict[str, dict[str, type]]) -> tuple[str | None, str]:
    """(section, field) for a dotted or bare key; None as section for the top-level dataset and seed."""
    if "." in key:
        section, _, name = key.partition(".")
        if section not in types:
            raise RunError(f"unknown section in {key!r}; sections are {', '.join(SECTIONS)}")
        if name not in types[section]:
            raise RunError(f"unknown option {key!r}" + _known(types[section], section))
        return section, name
    if key in _TOP:
        return None, key
    if key == "baselines":
        return "baselines", "models"
    owners = [s for s in SECTIONS if key in types[s]]
    if len(owners) == 1:
        return owners[0], key
    if owners:
        raise RunError(f"option {key!r} is ambiguous: write {' or '.join(f'{s}.{key}' for s in owners)}")
    raise RunError(f"unknown option {key!r}; write section.key (sections: {', '.join(SECTIONS)}), "
                   f"e.g. generator.pe or training.epochs")


def _known(fields: dict[str, type], section: str, tokenizer: str | None = None) -> str:
    which = f" (tokenizer {tokenizer})" if tokenizer and section == "tokenizer" else ""
    return f"; {section}{which} has {', '.join(fields)}"


def _parse_value(raw: str, tp: type) -> Any:
    """A --set value as the field's type would read it: strings stay as typed, lists may be comma-separated."""
    if tp is str:
        return raw
    if tp == tuple[str, ...]:                            # ease,mf  [ease,mf]  ["ease", "mf"]  []
        inner = raw[1:-1] if raw.startswith("[") and raw.endswith("]") else raw
        return [s.strip().strip("\"'") for s in inner.split(",") if s.strip()]
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


_EXPECT = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _coerce(value: Any, tp: type, key: str, source: str) -> Any:
    """value as type tp, or a RunError saying what was expected."""
    ok = True
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    elif tp == tuple[str, ...]:
        ok = isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    if not ok:
        expected = _EXPECT.get(tp, "a list of names")
        raise RunError(f"{source}: {key}={value!r}: expected {expected}")
    return value
