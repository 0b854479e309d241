"""Range checks for frozen configs: each one raises ValueError naming the field, its value and what is allowed,
so a bad `--set` fails before any work starts."""

from __future__ import annotations

import math
from collections.abc import Iterable


def check_positive(config: object, *names: str, allow_zero: bool = False) -> None:
    """Each named numeric field is > 0 (or >= 0 with `allow_zero`) and finite."""
    for name in names:
        value = getattr(config, name)
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) \
            and (value >= 0 if allow_zero else value > 0)
        if not ok:
            raise ValueError(f"{name}={value!r}: must be a number {'>= 0' if allow_zero else '> 0'}")


def check_range(config: object, name: str, low: float, high: float, *, high_open: bool = False) -> None:
    """low <= field <= high (or < high with `high_open`)."""
    value = getattr(config, name)
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) \
        and low <= value and (value < high if high_open else value <= high)
    if not ok:
        raise ValueError(f"{name}={value!r}: must lie in [{low}, {high}{')' if high_open else ']'}")


def check_choice(config: object, name: str, choices: Iterable[str]) -> None:
    choices = tuple(choices)
    if getattr(config, name) not in choices:
        raise ValueError(f"{name}={getattr(config, name)!r}: must be one of {', '.join(choices)}")
