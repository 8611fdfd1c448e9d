"""Configuration (``cx.toml``): every setting a run uses, with stated defaults, checked up front.

A missing file means the documented defaults. A wrong key or value is an :class:`InputError`
that names the file, the key and what was expected, before any work starts. Example::

    store = "data/cx.duckdb"

    [model]
    segments = ["tier"]        # segment columns effects are broken down by
    horizon_months = 0         # 0: the last outcome month observed for the experiment
    pre_period = true          # adjust for pre-period spend bands where history exists
    sampler = "nutpie"         # or "pymc"
    chains = 4
    draws = 1000
    tune = 1000
    seed = 0

    [money]
    margin_rate = 0.30
    value_horizon_months = 12
    discount_rate = 0.10

    [interval]
    width = 0.90
    kind = "eti"

    [gate]
    max_rhat = 1.01
    min_ess_bulk = 400
    min_ess_tail = 400
    max_divergences = 0

    [experiments]
    include = []               # empty: every experiment in the store
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from attribution.errors import InputError
from attribution.settings import GateSetting, IntervalSetting
from attribution.value import MoneySettings


@dataclass(frozen=True)
class ModelSettings:
    """How models are fitted."""

    segments: tuple[str, ...] = ("tier",)
    horizon_months: int = 0
    pre_period: bool = True
    sampler: str = "nutpie"
    chains: int = 4
    draws: int = 1000
    tune: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.sampler not in ("nutpie", "pymc"):
            raise InputError(f"model.sampler must be 'nutpie' or 'pymc', got {self.sampler!r}")
        for name in ("chains", "draws", "tune"):
            if getattr(self, name) < 1:
                raise InputError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.horizon_months < 0:
            raise InputError(f"model.horizon_months must be >= 0, got {self.horizon_months}")


@dataclass(frozen=True)
class ExperimentSelection:
    """Which experiments a refresh fits (empty: all)."""

    include: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    """Everything a run needs. ``Config()`` is the documented defaults."""

    store: str | None = None
    model: ModelSettings = field(default_factory=ModelSettings)
    money: MoneySettings = field(default_factory=MoneySettings)
    interval: IntervalSetting = field(default_factory=IntervalSetting)
    gate: GateSetting = field(default_factory=GateSetting)
    experiments: ExperimentSelection = field(default_factory=ExperimentSelection)

    def to_dict(self) -> dict:
        """Plain dictionary of every setting (tuples as lists)."""
        return json.loads(json.dumps(asdict(self)))

    @property
    def hash(self) -> str:
        """SHA-256 of the settings (not of the file's formatting): identifies a configuration."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


_SECTIONS = {
    "model": ModelSettings,
    "money": MoneySettings,
    "interval": IntervalSetting,
    "gate": GateSetting,
    "experiments": ExperimentSelection,
}


def load_config(path: str | Path | None = None) -> Config:
    """Read a ``cx.toml`` file; ``None`` gives the defaults.

    Raises
    ------
    InputError
        Unreadable TOML, an unknown section or key, or a value of the wrong type or range.

    Examples
    --------
    >>> load_config().model.chains
    4
    """
    if path is None:
        return Config()
    p = Path(path)
    if not p.exists():
        raise InputError(f"configuration file {p} does not exist")
    try:
        raw = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{p}: not valid TOML: {exc}") from exc
    return config_from_dict(raw, source=str(p))


def config_from_dict(raw: dict, source: str = "configuration") -> Config:
    """Build a :class:`Config` from a parsed TOML dictionary, checking every key."""
    kwargs: dict = {}
    for key, value in raw.items():
        if key == "store":
            if not isinstance(value, str):
                raise InputError(f"{source}: store must be a path string, got {value!r}")
            kwargs["store"] = value
        elif key in _SECTIONS:
            if not isinstance(value, dict):
                raise InputError(f"{source}: [{key}] must be a table of settings")
            kwargs[key] = _section(_SECTIONS[key], key, value, source)
        else:
            allowed = ", ".join(["store", *_SECTIONS])
            raise InputError(f"{source}: unknown setting {key!r} (allowed: {allowed})")
    return Config(**kwargs)


def _section(cls, name: str, values: dict, source: str):
    defaults = {f.name: f for f in fields(cls)}
    out = {}
    for key, value in values.items():
        if key not in defaults:
            raise InputError(
                f"{source}: unknown setting {name}.{key} (allowed: {', '.join(defaults)})"
            )
        default = getattr(cls(), key)
        out[key] = _coerce(f"{name}.{key}", value, default, source)
    try:
        return cls(**out)
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from exc


def _coerce(key: str, value, default, source: str):
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, tuple):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise InputError(
            f"{source}: {key} must be {type(default).__name__} like {default!r}, got {value!r}"
        )
    return value
