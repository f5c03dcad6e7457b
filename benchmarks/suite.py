"""Benchmark suites: TOML files (data, not code) naming the grid model x config x seed and its protocol.

A suite file (``benchmarks/suites/<name>.toml``)::

    name = "smoke"
    description = "..."
    seeds = [0]
    device = "cpu"                       # auto | cpu | cuda

    [data]
    label_set = "fer7"

    [budget]                             # exactly one of steps / minutes
    steps = 40                           # or "config": each named config's own train.steps

    [train]                              # train.* overrides applied to every run
    batch_size = 16

    [eval]
    metrics = ["fid1k_train", "kid1k_train"]   # protocol names (see `exprbench metrics`)
    curve_metric = "fid500_train"        # periodic evaluation during training ("" = off)
    curve_every = 20                     # steps between curve points

    [[models]]
    name = "cgan"
    configs = ["default"]
    set = { "model.ch" = 8 }             # model.* / train.* / data.* overrides
    # values may use {runs} (the suite's run directory) and {seed}: another grid point's run, e.g.
    # [[models]] name = "interfacegan", set = { "model.base_run" = "{runs}/gan-default-s{seed}" }
    # (list the base model first: the grid runs in file order)

:func:`load_suite` validates everything up front (unknown model, config, key, bad budget) and raises
:class:`SuiteError` (CLI exit code 2) naming the file and the offending entry.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exprbench.runs.config import NO_STEP_BUDGET, RunConfig, resolve_config
from exprbench.core.errors import UserError
from exprbench.runs.layout import collapse_runs

SUITES_DIR = Path(__file__).resolve().parent / "suites"
# a suite name becomes a folder name (results/<name>): letters, digits, '.', '_', '-', nothing path-like
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# keys that do not change what a grid point computes: where the data lies and which device runs it
IDENTITY_IGNORED = ("train.device", "data.path")


class SuiteError(UserError):
    """A suite file is missing, malformed, or names an unknown model, config, key or budget."""


@dataclass(frozen=True)
class GridPoint:
    """One run of a suite: ``<model>-<config>-s<seed>``; ``skip_metrics``: suite protocols not evaluated for it;
    ``keep_samples``: its evaluation keeps the generated sets on disk (``evaluate --keep-samples``)."""

    model: str
    config: str
    seed: int
    overrides: tuple[str, ...]
    skip_metrics: tuple[str, ...] = ()
    keep_samples: bool = False

    @property
    def name(self) -> str:
        return f"{self.model}-{self.config}-s{self.seed}"


@dataclass
class Suite:
    """A parsed suite.

    Attributes:
        name, description: from the file.
        path: the TOML file.
        grid: the runs, in file order (model, then config, then seed).
        metrics: protocol names evaluated after training.
        curve_metric, curve_every: periodic evaluation during training ("" / 0 = off).
        ci_draws: bootstrap draws of each metric's interval (None: the metrics' default, 200; 0: none).
        device: training and evaluation device.
        budget: ``{"steps": N}`` or ``{"minutes": M}``.
    """

    name: str
    description: str
    path: Path
    grid: list[GridPoint]
    metrics: list[str]
    curve_metric: str = ""
    curve_every: int = 0
    device: str = "auto"
    budget: dict[str, Any] = field(default_factory=dict)
    ci_draws: int | None = None

    def run_config(self, point: GridPoint, data: str | None = None, runs_dir: str | Path | None = None) -> RunConfig:
        """The resolved :class:`RunConfig` of ``point`` (``data`` sets ``data.path``).

        Override values may name other runs of the suite: ``{runs}`` is replaced by ``runs_dir`` (the
        suite's run directory, when given) and ``{seed}`` by the point's seed, e.g. InterFaceGAN's
        ``model.base_run = "{runs}/gan-default-s{seed}"``.
        """
        extra = [f"data.path={data}"] if data else []
        overrides = [o.replace("{seed}", str(point.seed)) for o in point.overrides]
        if runs_dir is not None:
            overrides = [o.replace("{runs}", str(runs_dir)) for o in overrides]
        return resolve_config(point.model, point.config, [*overrides, *extra])

    def identity(self, point: GridPoint) -> dict:
        """What defines ``point``'s results: its resolved config as ``{"model.ch": 8, "train.steps": 6, ...}``.

        ``train.device`` and ``data.path`` are left out, and ``{runs}`` stays a placeholder, so the
        same grid point run on another device, host or mount of the results folder has the same identity.
        """
        return identity_config(self.run_config(point).to_dict())

    def dependencies(self, point: GridPoint) -> list[str]:
        """Names of the grid points whose run directories ``point``'s overrides name through ``{runs}/``."""
        names = {p.name for p in self.grid}
        deps = []
        for o in point.overrides:
            for m in re.finditer(r"\{runs\}/([^/\s\"',}]+)", o.replace("{seed}", str(point.seed))):
                if m.group(1) in names and m.group(1) != point.name and m.group(1) not in deps:
                    deps.append(m.group(1))
        return deps


def identity_config(config: dict, runs_dir: str | Path | None = None) -> dict:
    """A RunConfig dict (``RunConfig.to_dict()``, a run's config.json) as the flat identity mapping.

    Args:
        config: the nested config dict.
        runs_dir: the suite's run directory substituted into this config, if any: string values under
            it are written back as ``{runs}/...`` (for run directories written before identity.json).
    """
    from exprbench.runs.config import flatten

    flat = flatten({"model": config.get("model_cfg", {}), "train": config.get("train", {}),
                    "data": config.get("data", {}), "name": {"model": config.get("model"),
                                                             "config": config.get("config_name")}})
    flat = {k: v for k, v in flat.items() if k not in IDENTITY_IGNORED}
    return collapse_runs(flat, runs_dir) if runs_dir is not None else flat


def identity_hash(identity: dict) -> str:
    """sha256 (hex) of an identity mapping (canonical JSON: sorted keys, no spaces)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


# the suite file's schema: field -> expected TOML type (checked before any value is used)
_TOP_TYPES = {"description": str, "seeds": list, "device": str, "data": dict, "budget": dict,
              "train": dict, "eval": dict, "models": list}
_EVAL_TYPES = {"metrics": list, "curve_metric": str, "curve_every": int, "ci_draws": int}
_MODEL_TYPES = {"name": str, "configs": list, "set": dict, "seeds": list, "skip_metrics": list, "keep_samples": bool}
_TOML_NAMES = {str: "a string", list: "a list", dict: "a table", int: "an integer"}


def _check_types(raw: dict, path: Path) -> None:
    """Refuse values of the wrong TOML type with one line naming the field (SuiteError)."""
    def expect(value, tp, where: str) -> None:
        if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
            raise SuiteError(f"{path}: {where} = {value!r} must be {_TOML_NAMES[tp]}")

    for key, tp in _TOP_TYPES.items():
        if key in raw:
            expect(raw[key], tp, key)
    for key, tp in _EVAL_TYPES.items():
        if key in raw.get("eval", {}):
            expect(raw["eval"][key], tp, f"[eval] {key}")
    ev = raw.get("eval", {})
    if isinstance(ev.get("curve_every"), int) and ev["curve_every"] < 0:
        raise SuiteError(f"{path}: [eval] curve_every = {ev['curve_every']} must be >= 0")
    if isinstance(ev.get("ci_draws"), int) and ev["ci_draws"] < 0:
        raise SuiteError(f"{path}: [eval] ci_draws = {ev['ci_draws']} must be >= 0")
    for m in ev.get("metrics", []):
        expect(m, str, "[eval] metrics entry")
    for i, entry in enumerate(raw.get("models", []), 1):
        expect(entry, dict, f"[[models]] entry {i}")
        for key, tp in _MODEL_TYPES.items():
            if key in entry:
                expect(entry[key], tp, f"[[models]] entry {i} {key}")
        for c in entry.get("configs", []):
            expect(c, str, f"[[models]] entry {i} configs entry")


def _kv(section: dict, prefix: str) -> list[str]:
    out = []
    for k, v in section.items():
        if isinstance(v, dict):
            out += _kv(v, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}={_literal(v)}")
    return out


def _literal(v: Any) -> str:
    import json

    return v if isinstance(v, str) else json.dumps(v)


def resolve_suite_path(name_or_path: str | Path) -> Path:
    """A suite name (``smoke``) from ``benchmarks/suites/`` or a path to a TOML file.

    Raises:
        SuiteError: no such suite (lists the shipped ones).
    """
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.exists():
            raise SuiteError(f"suite file not found: {p}")
        return p
    cand = SUITES_DIR / f"{name_or_path}.toml"
    if not cand.exists():
        known = ", ".join(sorted(x.stem for x in SUITES_DIR.glob("*.toml")))
        raise SuiteError(f"unknown suite {str(name_or_path)!r} (shipped: {known}; or pass a .toml path)")
    return cand


def _check_label_set(label_set: str, path: Path, model: str) -> None:
    """Refuse a label set no dataset knows (``fer9``) when the suite loads, not when its first point trains.

    Raises:
        SuiteError: names the file, the model entry and the value.
    """
    from exprbench.data import DATASETS, LABEL_SETS

    if not any(d.owns(label_set) for d in DATASETS.values()):
        raise SuiteError(f"{path}: [[models]] {model!r}: data.label_set = {label_set!r} is not a known label set "
                         f"(known: {', '.join(LABEL_SETS)}, celeba, celeba-<Attribute>)")


def load_suite(name_or_path: str | Path) -> Suite:
    """Parse and validate a suite file.

    Raises:
        SuiteError: unreadable TOML, missing or unknown fields, unknown model/config/override key, an
            unknown label set, a budget that is not exactly one positive ``steps`` or ``minutes``, empty seeds or models.
    """
    path = resolve_suite_path(name_or_path)
    raw = _read_suite_file(path)
    bkey, bval, budget_over = _budget_overrides(raw.get("budget", {}), path)
    seeds = raw.get("seeds", [0])
    if not _is_seed_list(seeds):
        raise SuiteError(f"{path}: seeds = {seeds!r} must be a non-empty list of integers")
    device = raw.get("device", "auto")
    common = _kv(raw.get("train", {}), "train.") + _kv(raw.get("data", {}), "data.") + budget_over
    common.append(f"train.device={device}")

    ev = raw.get("eval", {})
    metrics = list(ev.get("metrics", []))
    curve_metric, curve_every = str(ev.get("curve_metric", "")), int(ev.get("curve_every", 0))
    _check_protocols(metrics + ([curve_metric] if curve_metric else []), path)

    models = raw.get("models", [])
    if not models:
        raise SuiteError(f"{path}: no [[models]] entries")
    grid: list[GridPoint] = []
    for i, entry in enumerate(models, 1):
        grid += _model_points(entry, i, path, common, metrics, seeds)
    _check_unique_points(grid, path)
    name = _suite_name(raw, path)
    return Suite(name, raw.get("description", ""), path, grid, metrics,
                 curve_metric, curve_every, device, {bkey: bval}, ev.get("ci_draws"))


def _read_suite_file(path: Path) -> dict:
    """The suite file's TOML table, its top-level fields known and every value of the expected type."""
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SuiteError(f"{path}: not valid TOML ({e})") from None
    known_top = {"name", "description", "seeds", "device", "data", "budget", "train", "eval", "models"}
    unknown = sorted(set(raw) - known_top)
    if unknown:
        raise SuiteError(f"{path}: unknown field {unknown[0]!r} (known: {', '.join(sorted(known_top))})")
    _check_types(raw, path)
    return raw


def _budget_overrides(budget: dict, path: Path) -> tuple[str, Any, list[str]]:
    """``(key, value, train overrides)`` of ``[budget]``: one positive ``steps`` (or "config") or ``minutes``."""
    keys = set(budget) & {"steps", "minutes"}
    if len(keys) != 1 or set(budget) - {"steps", "minutes"}:
        raise SuiteError(f"{path}: [budget] needs exactly one of steps or minutes, got {budget}")
    (bkey,) = keys
    bval = budget[bkey]
    if bkey == "steps" and bval == "config":
        return bkey, bval, []
    if isinstance(bval, bool) or not isinstance(bval, (int, float)) or bval <= 0 or (bkey == "steps" and not isinstance(bval, int)):
        raise SuiteError(f"{path}: [budget] {bkey} = {bval!r} must be a positive {'integer' if bkey == 'steps' else 'number'}"
                         + (' or "config"' if bkey == "steps" else ""))
    return bkey, bval, [f"train.steps={bval}"] if bkey == "steps" else [f"train.minutes={bval}", NO_STEP_BUDGET]


def _is_seed_list(seeds: Any) -> bool:
    """True for a non-empty list of integers (booleans are not seeds)."""
    return isinstance(seeds, list) and bool(seeds) and all(isinstance(s, int) and not isinstance(s, bool)
                                                           for s in seeds)


def _check_protocols(names: list[str], path: Path) -> None:
    """Refuse an unknown metric protocol name of ``[eval]`` (SuiteError naming the file)."""
    try:
        from exprbench.metrics.protocols.catalog import resolve_metric

        for m in names:
            resolve_metric(m)
    except UserError as e:
        raise SuiteError(f"{path}: [eval] {e}") from None


def _model_points(entry: dict, i: int, path: Path, common: list[str], metrics: list[str],
                  seeds: list[int]) -> list[GridPoint]:
    """The grid points of ``[[models]]`` entry ``i`` (config by config, then seed by seed), each config checked."""
    skip, entry_seeds = _check_model_entry(entry, i, path, metrics, seeds)
    overrides = common + [f"{k}={_literal(v)}" for k, v in entry.get("set", {}).items()]
    points = []
    for config in entry.get("configs", ["default"]):
        _check_config(entry["name"], config, overrides, path)
        for seed in entry_seeds:
            points.append(GridPoint(entry["name"], config, seed, tuple(overrides + [f"train.seed={seed}"]),
                                    tuple(skip), bool(entry.get("keep_samples", False))))
    return points


def _check_model_entry(entry: dict, i: int, path: Path, metrics: list[str], seeds: list[int]) -> tuple[list, list]:
    """``(skip_metrics, seeds)`` of ``[[models]]`` entry ``i``; refuses no name, an unknown field, bad skips/seeds."""
    if "name" not in entry:
        raise SuiteError(f"{path}: [[models]] entry {i} has no name")
    extra = sorted(set(entry) - set(_MODEL_TYPES))
    if extra:
        raise SuiteError(f"{path}: [[models]] {entry['name']!r}: unknown field {extra[0]!r} (known: {', '.join(_MODEL_TYPES)})")
    skip = entry.get("skip_metrics", [])  # a model's exceptions to [eval] metrics (e.g. a costly one the gate runs once)
    not_listed = [m for m in skip if m not in metrics]
    if not_listed:
        raise SuiteError(f"{path}: [[models]] {entry['name']!r}: skip_metrics names {not_listed[0]!r}, which is not "
                         "in [eval] metrics")
    entry_seeds = entry.get("seeds", seeds)  # a model may run fewer (or other) seeds than the suite's
    if not _is_seed_list(entry_seeds):
        raise SuiteError(f"{path}: [[models]] {entry['name']!r}: seeds = {entry_seeds!r} must be a non-empty list of integers")
    return skip, entry_seeds


def _check_config(model: str, config: str, overrides: list[str], path: Path) -> None:
    """Resolve a grid point's config now, not mid-suite: model, config name, every override key and value, label set."""
    try:
        cfg = resolve_config(model, config, overrides)
    except UserError as e:
        raise SuiteError(f"{path}: [[models]] {model!r} config {config!r}: {e}") from None
    _check_label_set(cfg.data.label_set, path, model)


def _check_unique_points(grid: list[GridPoint], path: Path) -> None:
    """Refuse a grid in which a point name appears twice."""
    names = [g.name for g in grid]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SuiteError(f"{path}: grid point {dup[0]!r} appears twice")


def _suite_name(raw: dict, path: Path) -> str:
    """The suite's name (default: the file's stem), refused unless it is a plain folder name."""
    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not PLAIN_NAME.fullmatch(name):
        raise SuiteError(f"{path}: name = {name!r} must be a plain name (letters, digits, '.', '_', '-', "
                         "starting with a letter or digit): it names the results folder results/<name>")
    return name
