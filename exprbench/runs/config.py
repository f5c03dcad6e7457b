"""Configuration as data: dataclasses, named configs per model, dotted ``--set`` overrides.

A run is fully described by a :class:`RunConfig`: the model plugin name, the named config it started
from (``default`` or ``reference``), the model's own config dataclass, the training settings and the
data settings. :func:`resolve_config` builds it as::

    plugin defaults  <-  plugin.named_configs[name]  <-  --set overrides (in order)

and the harness writes the result to ``config.json`` in the run directory, from which
:func:`config_from_dict` rebuilds it exactly (for ``--resume``, ``sample`` and ``evaluate``).
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from exprbench.data.augment import AugmentConfig
from exprbench.core.errors import ConfigError


# the override of a wall-clock-only budget (``--minutes M`` / a suite's ``[budget] minutes``): no step budget
NO_STEP_BUDGET = "train.steps=null"


@dataclass
class TrainConfig:
    """Generic training-loop settings (the harness's; models own their optimizer settings).

    Attributes:
        steps: number of training steps (one ``training_step`` call each); None = no step budget
            (``--minutes`` alone: then ``minutes`` must be set).
        minutes: wall-clock budget in minutes (training time only, summed over resumes); when set,
            training stops at whichever of ``steps`` and ``minutes`` comes first.
        batch_size: real images per step.
        seed: seeds torch's RNGs, the data order and the fixed sample-grid z.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda[:i]``.
        amp: bf16 autocast on CUDA (never on CPU, where it is slower).
        channels_last: NHWC memory format for conv nets (faster on CPU and GPU).
        deterministic: deterministic algorithms (CPU runs are then bitwise reproducible).
        ema: keep an exponential moving average of the generator for sampling (Yazici et al. 2019).
        ema_decay: EMA decay per step.
        log_every: steps between ``train.jsonl`` / TensorBoard records.
        sample_every: steps between sample grids (0 = only at the end).
        ckpt_every: steps between checkpoints (0 = only at the end).
        keep_ckpts: how many recent checkpoints are kept.
        samples_per_class: columns of the sample grid (one row per class).
        split: data split trained on.
        init_from: a checkpoint file (``checkpoints/step_*.pt`` of a run of the same model and config)
            whose model state (nets, optimizers, EMA) this run starts from at step 0: a fine-tune (the
            regression gate's, docs/gate.md); a relative path resolves against the working directory.

    Ranges are declared on the fields (``metadata``, see :func:`check_range`) and checked whenever a
    value is set, so a bad value is refused with one line before a run starts.
    """

    steps: int | None = field(default=2000, metadata={"min": 1})
    minutes: float | None = field(default=None, metadata={"gt": 0})
    batch_size: int = field(default=64, metadata={"min": 1})
    seed: int = field(default=0, metadata={"min": 0, "max": 2**63 - 1})
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    deterministic: bool = True
    ema: bool = False
    ema_decay: float = field(default=0.999, metadata={"min": 0, "max": 1})
    log_every: int = field(default=50, metadata={"min": 1})
    sample_every: int = field(default=500, metadata={"min": 0})
    ckpt_every: int = field(default=500, metadata={"min": 0})
    keep_ckpts: int = field(default=2, metadata={"min": 1})
    samples_per_class: int = field(default=8, metadata={"min": 1})
    split: str = field(default="train", metadata={"choices": ("train", "val", "test", "all")})
    init_from: str | None = None


@dataclass
class DataConfig:
    """Dataset settings.

    Attributes:
        path: dataset path (None: ``$EXPRBENCH_DATA`` or ``data/fer2013.*``); not part of a run's
            identity, the content fingerprint is.
        label_set: ``fer7`` or ``fer6`` (FER2013), ``celeba`` (= ``celeba-Smiling``) or
            ``celeba-<Attribute>`` (CelebA, any attribute of ``list_attr_celeba.txt``); checked when the
            data is loaded (:func:`exprbench.data.load_dataset`).
        augment: augmentation of real training images.
    """

    path: str | None = None
    label_set: str = "fer7"
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class RunConfig:
    """Everything that defines a training run.

    Attributes:
        model: registered plugin name, e.g. ``cgan``.
        config_name: the named config it was resolved from (``default``, ``reference``, ...).
        model_cfg: the plugin's own ``Config`` dataclass (``model.*`` keys in overrides).
        train: :class:`TrainConfig` (``train.*``).
        data: :class:`DataConfig` (``data.*``).
    """

    model: str
    config_name: str
    model_cfg: Any
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def to_dict(self) -> dict:
        """JSON-ready dict; ``model_cfg`` appears under the key ``model_cfg``."""
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------
# value parsing and coercion


def parse_value(text: str) -> Any:
    """Parse a ``--set`` value: JSON (``3``, ``1e-4``, ``true``, ``[-50, 30]``, ``null``), a Python
    literal (``True``, ``(1, 2)``, ``None``), or else the text itself as a string."""
    for parser in (json.loads, ast.literal_eval):
        try:
            return parser(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return text


def _coerce_union(value: Any, tp: Any, key: str) -> Any:
    """``value`` as the first member of the union ``tp`` it converts to (None for none/null when allowed)."""
    args = typing.get_args(tp)
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
        if type(None) in args:
            return None
    for a in [a for a in args if a is not type(None)]:
        try:
            return _coerce(value, a, key)
        except ConfigError:
            continue
    raise ConfigError(f"{key}={value!r}: expected {tp}")


def _coerce_sequence(value: Any, tp: Any, key: str) -> Any:
    """``value`` as the list or tuple type ``tp`` (a fixed-length tuple checks its length), item by item."""
    origin = typing.get_origin(tp)
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key}={value!r}: expected a list like [1, 2]")
    args = typing.get_args(tp)
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(value):
            raise ConfigError(f"{key}={value!r}: expected {len(args)} values")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args))
    inner = args[0] if args else Any
    seq = [_coerce(v, inner, key) for v in value]
    return tuple(seq) if origin is tuple else seq


def _coerce_bool(value: Any, key: str) -> bool:
    """``value`` as a bool: a bool, true/false/1/0/yes/no (any case) or the integer 0 or 1."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ConfigError(f"{key}={value!r}: expected true or false")


def _coerce_int(value: Any, key: str) -> int:
    """``value`` as an int: an integer, or a float with an integral value (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise ConfigError(f"{key}={value!r}: expected an integer")
    return int(value)


def _coerce_float(value: Any, key: str) -> float:
    """``value`` as a finite float (an int or a float, not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}={value!r}: expected a number")
    if not math.isfinite(value):
        raise ConfigError(f"{key}={value!r}: expected a finite number")
    return float(value)


def _coerce_str(value: Any, key: str) -> str:
    """``value`` unchanged if it is a string."""
    if not isinstance(value, str):
        raise ConfigError(f"{key}={value!r}: expected a string")
    return value


def _coerce_table(value: Any, tp: type, key: str) -> Any:
    """A new ``tp`` (a config dataclass) with the fields of the mapping ``value`` set on its defaults."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}={value!r}: expected a table of {tp.__name__} fields")
    obj = tp()
    for k, v in value.items():
        set_key(obj, k, v, prefix=f"{key}.")
    return obj


_SCALARS: dict[type, Callable[[Any, str], Any]] = {bool: _coerce_bool, int: _coerce_int, float: _coerce_float, str: _coerce_str}


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """``value`` (given for the field ``key``) checked and converted to the field's type ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, tp, key)
    if origin in (tuple, list):
        return _coerce_sequence(value, tp, key)
    if isinstance(tp, type) and tp in _SCALARS:
        return _SCALARS[tp](value, key)
    if dataclasses.is_dataclass(tp):
        return _coerce_table(value, tp, key)
    return value


def _field_types(obj: Any) -> dict[str, Any]:
    return typing.get_type_hints(type(obj))


RANGE_KEYS = ("min", "max", "gt", "lt", "choices")


def check_range(value: Any, meta: Mapping[str, Any], key: str) -> None:
    """Check a coerced value against the range a dataclass field declares in its ``metadata``.

    ``metadata`` keys: ``min`` / ``max`` (inclusive), ``gt`` / ``lt`` (exclusive), ``choices`` (allowed
    values). None (an optional field left unset) always passes; a list or tuple is checked element-wise.
    Declare them as ``field(default=64, metadata={"min": 1})``.

    Raises:
        ConfigError: one line naming the key and the value, e.g. ``train.log_every=0: must be >= 1``.
    """
    if value is None or not any(k in meta for k in RANGE_KEYS):
        return
    for v in value if isinstance(value, (list, tuple)) else (value,):
        if "choices" in meta and v not in meta["choices"]:
            raise ConfigError(f"{key}={value!r}: expected one of {', '.join(map(str, meta['choices']))}")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        for name, ok, word in (("min", lambda a, b: a >= b, ">="), ("max", lambda a, b: a <= b, "<="),
                               ("gt", lambda a, b: a > b, ">"), ("lt", lambda a, b: a < b, "<")):
            if name in meta and not ok(v, meta[name]):
                raise ConfigError(f"{key}={value!r}: must be {word} {meta[name]}")


def check_ranges(obj: Any, prefix: str = "") -> None:
    """Check every field of a config dataclass (recursively) against its declared range.

    Raises:
        ConfigError: the first field out of its range (see :func:`check_range`).
    """
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            check_ranges(v, f"{prefix}{f.name}.")
        else:
            check_range(v, f.metadata, f"{prefix}{f.name}")


def set_key(obj: Any, dotted: str, value: Any, prefix: str = "") -> None:
    """Set ``obj.<dotted>`` to ``value`` coerced to the field's declared type, in place, after checking
    the range the field declares (:func:`check_range`).

    Raises:
        ConfigError: unknown key (the message lists the valid ones), a value of the wrong type, a
            non-finite float, or a value outside the field's range.
    """
    head, _, rest = dotted.partition(".")
    if not dataclasses.is_dataclass(obj):
        raise ConfigError(f"{prefix}{dotted}: {prefix.rstrip('.')} has no sub-keys")
    types_ = _field_types(obj)
    names = [f.name for f in dataclasses.fields(obj)]
    if head not in names:
        raise ConfigError(f"unknown config key {prefix + head!r} (known: {', '.join(names)})")
    if rest:
        set_key(getattr(obj, head), rest, value, prefix=f"{prefix}{head}.")
    else:
        coerced = _coerce(value, types_[head], f"{prefix}{head}")
        meta = next(f.metadata for f in dataclasses.fields(obj) if f.name == head)
        check_range(coerced, meta, f"{prefix}{head}")
        setattr(obj, head, coerced)


# ``model_cfg.`` is accepted too: the name config.json and ``config show`` print the model's section under
_SECTION = {"model": "model_cfg", "model_cfg": "model_cfg", "train": "train", "data": "data"}


def apply_overrides(cfg: RunConfig, overrides: Mapping[str, Any] | list[str]) -> RunConfig:
    """Apply overrides in order: a mapping ``{"model.z_dim": 128}`` or CLI strings ``"model.z_dim=128"``.

    Raises:
        ConfigError: malformed ``key=value``, unknown section or key, or a badly typed value.
    """
    items: list[tuple[str, Any]]
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    else:
        items = []
        for text in overrides:
            key, eq, raw = text.partition("=")
            if not eq or not key.strip():
                raise ConfigError(f"--set {text!r}: expected key=value, e.g. model.z_dim=128")
            items.append((key.strip(), parse_value(raw.strip())))
    for key, value in items:
        section, _, rest = key.partition(".")
        if section not in _SECTION or not rest:
            raise ConfigError(f"config key {key!r} must start with model., train. or data.")
        set_key(getattr(cfg, _SECTION[section]), rest, value, prefix=f"{'model' if section == 'model_cfg' else section}.")
    return cfg


def resolve_config(model: str, config_name: str = "default", overrides: Mapping[str, Any] | list[str] = ()) -> RunConfig:
    """Build the :class:`RunConfig` of plugin ``model`` from its named config and the overrides.

    Raises:
        RegistryError: unknown model. ConfigError: unknown config name, key, bad value or a value
        outside its field's declared range.
    """
    from exprbench.models import get_model  # late import: plugins register on import

    cls = get_model(model)
    if config_name not in cls.named_configs:
        raise ConfigError(
            f"model {model!r} has no config {config_name!r} (known: {', '.join(cls.named_configs)})"
        )
    cfg = RunConfig(model=model, config_name=config_name, model_cfg=cls.Config())
    apply_overrides(cfg, cls.named_configs[config_name])
    apply_overrides(cfg, overrides)
    check_ranges(cfg.model_cfg, "model.")
    check_ranges(cfg.train, "train.")
    check_ranges(cfg.data, "data.")
    check_budget(cfg.train)
    return cfg


def check_budget(train: TrainConfig) -> None:
    """A run needs a budget: ``train.steps``, ``train.minutes`` or both.

    Raises:
        ConfigError: ``train.steps`` is null (no step budget) and ``train.minutes`` is not set.
    """
    if train.steps is None and train.minutes is None:
        raise ConfigError("train.steps=null (no step budget) needs train.minutes: give a number of steps or minutes")


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping -> ``{"a.b.c": value}``; tuples become lists, as they are in JSON."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out


def config_from_dict(d: Mapping[str, Any]) -> RunConfig:
    """Rebuild a :class:`RunConfig` from :meth:`RunConfig.to_dict` output (e.g. a run's config.json).

    Raises:
        ConfigError: missing fields or keys that the plugin no longer knows.
    """
    from exprbench.models import get_model

    try:
        cls = get_model(d["model"])
        cfg = RunConfig(model=d["model"], config_name=d["config_name"], model_cfg=cls.Config())
        flat = {"model." + k: v for k, v in flatten(d["model_cfg"]).items()}
        flat.update({"train." + k: v for k, v in flatten(d["train"]).items()})
        flat.update({"data." + k: v for k, v in flatten(d["data"]).items()})
    except (KeyError, TypeError, AttributeError) as e:
        raise ConfigError(f"config is missing field {e}") from None
    return apply_overrides(cfg, flat)


def load_run_config(run_dir) -> RunConfig:
    """Read ``run_dir/config.json`` back into a :class:`RunConfig` (see :mod:`exprbench.runs.layout`); values
    ``{runs}/<run>`` name a sibling run directory of ``run_dir``.

    Raises:
        UserError: no such run directory / config, or malformed JSON (names the line).
        ConfigError: missing fields or keys that the plugin no longer knows.
    """
    from exprbench.runs.layout import expand_runs, read_config

    return config_from_dict(expand_runs(read_config(run_dir), run_dir))
