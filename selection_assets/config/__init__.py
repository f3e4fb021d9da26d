"""The experiment config: one TOML file saying what an experiment runs, read by `selection-assets`
and by `dagster dev` alike (docs/configuration.md).

    methods = "spine"            # 'spine', 'all', comma-separated names, or a list of names
    [grid]                       # required: the pool sizes and budgets of the partition grid
    pool_sizes = [1000, 4000]
    budgets = [100, 400]
    [data] / [world] / [training] / [compute] / [search]
                                 # fields of DataResource / WorldResource / TrainResource /
                                 # ComputeResource / SearchResource (training.seeds: replicate seeds)

A field a file leaves out keeps the default its resource declares; nothing else declares one. The
shipped configs (the `world` default and `smol`) are the `*.toml` files beside this module, picked
by name with SELECTION_ASSETS_PROFILE or `--profile`; a file of one's own is named by path with
SELECTION_ASSETS_CONFIG or `--config`. An error names the file, the field and what it allows.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from selection_assets.resources import ComputeResource, DataResource, SearchResource, TrainResource, WorldResource

CONFIG_ENV = "SELECTION_ASSETS_CONFIG"  # the path of an experiment config file
PROFILE_ENV = "SELECTION_ASSETS_PROFILE"  # the name of a shipped one
DEFAULT_PROFILE = "world"
SHIPPED_DIR = Path(__file__).resolve().parent
# each table of a config file: the resource whose fields it sets, and the key of that resource in the
# definitions (the storage root is the one resource no config sets: a path, from the environment)
TABLES = {"data": DataResource, "world": WorldResource, "training": TrainResource, "compute": ComputeResource,
          "search": SearchResource}
GRID_FIELDS = ("pool_sizes", "budgets")


class ConfigError(ValueError):
    """An experiment config that cannot be used: the message names the file and the field."""


@dataclass(frozen=True)
class Experiment:
    """One experiment config, validated: its grid, its methods (as `choose_methods` reads them) and,
    per resource table, the fields it sets."""

    name: str
    source: Path
    pool_sizes: tuple[int, ...]
    budgets: tuple[int, ...]
    methods: str
    tables: dict[str, dict] = field(default_factory=dict)

    def named_methods(self, data, echo=lambda _: None) -> list[str]:
        """The methods the config names, as `choose_methods` checks them against the registry and
        `data` (a DataResource; those 'all' leaves out are named through `echo`). Raises
        ConfigError naming the file for an unknown method."""
        from selection_assets.core.methods import choose_methods

        try:
            return choose_methods(self.methods, data, echo=echo)
        except ValueError as err:
            raise ConfigError(f"{self.source}: methods: {err}") from None

    def settings(self, table: str) -> dict:
        """The fields the config sets in `table` (one of TABLES; empty when it sets none)."""
        return dict(self.tables.get(table, {}))

    def changed(self, methods: str | None = None, pool_sizes: list[int] | None = None,
                budgets: list[int] | None = None, **tables: dict) -> "Experiment":
        """This experiment with `methods` and the grid's `pool_sizes` and `budgets` (each when given)
        and the fields of `tables` (table name -> the fields it sets) over its own, validated as a
        file's would be (ConfigError naming this config's file)."""
        merged = {name: {**self.settings(name), **tables.get(name, {})} for name in TABLES
                  if name in self.tables or tables.get(name)}
        grid = {"pool_sizes": list(self.pool_sizes if pool_sizes is None else pool_sizes),
                "budgets": list(self.budgets if budgets is None else budgets)}
        return Experiment(name=self.name, source=self.source, pool_sizes=_sizes(self.source, grid, "pool_sizes"),
                          budgets=_sizes(self.source, grid, "budgets"),
                          methods=_methods(self.source, self.methods if methods is None else methods),
                          tables={name: _resource_fields(self.source, merged, name) for name in merged})

    def dumps(self) -> str:
        """The experiment as a config file's TOML text (`load` reads it back as this experiment)."""
        lines = [f"methods = {_toml_value(self.methods)}", "", "[grid]",
                 f"pool_sizes = {_toml_value(list(self.pool_sizes))}", f"budgets = {_toml_value(list(self.budgets))}"]
        for name, values in self.tables.items():
            lines += ["", f"[{name}]", *(f"{key} = {_toml_value(value)}" for key, value in values.items())]
        return "\n".join(lines) + "\n"


def _toml_value(value) -> str:
    """A config value (string, bool, number or list of them) as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"a config value must be a string, bool, number or list, got {value!r}")


def load(path: Path | str) -> Experiment:
    """The experiment config in the TOML file at `path`. Raises ConfigError naming the file, the
    field and the values it allows."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the experiment config ({err.strerror})") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from None
    allowed = ("methods", "grid", *TABLES)
    for key in raw:
        if key not in allowed:
            raise ConfigError(f"{path}: unknown key {key!r}; allowed: {', '.join(allowed)}")
    grid = _table(path, raw, "grid")
    for key in grid:
        if key not in GRID_FIELDS:
            raise ConfigError(f"{path}: [grid] unknown field {key!r}; allowed: {', '.join(GRID_FIELDS)}")
    pool_sizes, budgets = (_sizes(path, grid, name) for name in GRID_FIELDS)
    tables = {name: _resource_fields(path, raw, name) for name in TABLES if name in raw}
    return Experiment(name=path.stem, source=path, pool_sizes=pool_sizes, budgets=budgets,
                      methods=_methods(path, raw.get("methods", "spine")), tables=tables)


def shipped_names() -> list[str]:
    """The names of the shipped configs: the `*.toml` files beside this module."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.toml"))


def shipped(name: str) -> Experiment:
    """The shipped config `name`. Raises ConfigError naming the shipped ones for another name."""
    if name not in shipped_names():
        raise ConfigError(f"{PROFILE_ENV}={name!r} is not a shipped experiment config; known: "
                          f"{', '.join(shipped_names())}")
    return load(SHIPPED_DIR / f"{name}.toml")


def active() -> Experiment:
    """The experiment config the environment names: the file at SELECTION_ASSETS_CONFIG, else the
    shipped config SELECTION_ASSETS_PROFILE names (default `world`); not both."""
    path, name = os.environ.get(CONFIG_ENV), os.environ.get(PROFILE_ENV)
    if path and name:
        raise ConfigError(f"{CONFIG_ENV}={path!r} and {PROFILE_ENV}={name!r} are both set: name one experiment "
                          "config, a file of your own or a shipped one")
    return load(path) if path else shipped(name or DEFAULT_PROFILE)


def _table(path: Path, raw: dict, name: str) -> dict:
    value = raw.get(name)
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: [{name}] is required, a table" if value is None
                          else f"{path}: {name} must be a table ([{name}]), got {value!r}")
    return value


def _sizes(path: Path, grid: dict, name: str) -> tuple[int, ...]:
    value = grid.get(name)
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        raise ConfigError(f"{path}: [grid] {name} must be a non-empty list of positive integers, got {value!r}")
    if sorted(set(value)) != value:
        raise ConfigError(f"{path}: [grid] {name} must be ascending without repeats, got {value!r}")
    return tuple(value)


def _methods(path: Path, value) -> str:
    """`methods` as `choose_methods` reads it (which checks the names: `named_methods`)."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = ",".join(value)
    if not isinstance(value, str):
        raise ConfigError(f"{path}: methods must be 'spine', 'all', or method names (a list or comma-separated), "
                          f"got {value!r}")
    return value


def _resource_fields(path: Path, raw: dict, name: str) -> dict:
    """The fields table `name` sets, each checked by its resource's own validation."""
    values, resource = _table(path, raw, name), TABLES[name]
    unknown = [key for key in values if key not in resource.model_fields]
    if unknown:
        raise ConfigError(f"{path}: [{name}] unknown field {unknown[0]!r}; allowed: {', '.join(resource.model_fields)}")
    try:
        resource(**values)
    except ValidationError as err:
        problem = err.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise ConfigError(f"{path}: [{name}] {where}: {problem['msg']} (got {problem.get('input')!r})") from None
    return values
