"""Model plugins. The built-in models are registered lazily: a plugin's module (and torch) is imported
the first time its name is looked up (:func:`get_model`), so listing them (:func:`plugin_info`,
``exprbench models``) imports nothing heavy.

A plugin is a :class:`~exprbench.models.base.ModelPlugin` subclass registered with
``@register_model("name")``: its name is declared there, once, and its capabilities by the contract classes
it inherits (``Sampler``, ``Conditional``, ... of ``models/contracts.py``), once; registration checks that
each contract's methods are implemented (see :func:`~.contracts.check_contracts`). Adding a model is one
plugin file plus its module name in :data:`BUILTIN_MODULES` (or an entry point).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from exprbench.core.errors import RegistryError
from exprbench.core.registry import Registry

from .contracts import capabilities_of, check_contracts, contract_capabilities_by_name

MODELS: Registry = Registry("model", entry_point_group="exprbench.models")
_CONTRACT_CAPS = contract_capabilities_by_name()  # contract class name -> its capabilities (the listing reads bases)


def register_model(name: str):
    """Class decorator registering a plugin as ``name``: sets ``cls.name`` and ``cls.capabilities`` (the
    contract classes among its bases) and checks the contracts.

    Raises:
        RegistryError: a contract inherited without its methods (or the reverse); ``name`` or ``capabilities``
            also written in the class body (declared twice); ``name`` taken by another plugin.
    """
    register = MODELS.register(name)

    def deco(cls):
        twice = [k for k in ("name", "capabilities") if k in vars(cls)]
        if twice:
            raise RegistryError(f"{cls.__module__}.{cls.__qualname__} sets {' and '.join(twice)} in its body: the name "
                                "is @register_model's argument and the capabilities are its contract base classes")
        cls.name, cls.capabilities = name, capabilities_of(cls)
        check_contracts(cls)
        return register(cls)

    return deco


def list_models() -> list[str]:
    """Names of the registered plugins (built-in, lazily declared, and entry points), sorted."""
    return MODELS.names()

# the modules of the built-in plugins (each registers one model with @register_model)
BUILTIN_MODULES = ("acgan", "bicogan", "bigan", "ccyclegan", "cgan", "diffusion", "flow", "gan", "interfacegan", "vae")


def get_model(name: str):
    """Return the plugin class registered as ``name`` (raises RegistryError when unknown)."""
    return MODELS.get(name)


def _summary(doc: str | None) -> str:
    return (doc or "").strip().split(" (")[0]


def _static_info(module: str) -> dict[str, dict]:
    """``{name: info}`` of the plugins a built-in module registers, read from its source with ``ast``
    (the ``@register_model`` name, the contract classes among its bases, the ``named_configs`` literal, the
    module docstring), without importing it."""
    tree = ast.parse((Path(__file__).parent / f"{module}.py").read_text(encoding="utf-8"))
    out = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        names = [d.args[0].value for d in node.decorator_list
                 if isinstance(d, ast.Call) and getattr(d.func, "id", None) == "register_model"
                 and d.args and isinstance(d.args[0], ast.Constant)]
        if not names:
            continue
        info = {"module": f"{__name__}.{module}", "summary": _summary(ast.get_docstring(tree))}
        info["capabilities"] = sorted(set().union(*(_CONTRACT_CAPS.get(getattr(b, "id", ""), ()) for b in node.bases)))
        for stmt in node.body:
            if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)):
                continue
            key, value = stmt.targets[0].id, stmt.value
            try:
                if key == "named_configs" and isinstance(value, ast.Dict):
                    info["configs"] = [ast.literal_eval(k) for k in value.keys]
            except ValueError:  # not a literal: the listing imports the module instead
                pass
        out[names[0]] = info
    return out


_STATIC: dict[str, dict] = {}
for _mod in BUILTIN_MODULES:
    for _name, _info in _static_info(_mod).items():
        _STATIC[_name] = _info
        MODELS.register_lazy(_name, _info["module"])
del _mod, _name, _info


def plugin_info(name: str) -> dict:
    """What ``exprbench models`` shows of plugin ``name``: ``{"capabilities": [...], "configs": [...],
    "summary": str}``; read from the source for a built-in plugin that is not imported yet, else from
    the class.

    Raises:
        RegistryError: unknown name.
    """
    info = _STATIC.get(name, {})
    if {"capabilities", "configs"} <= set(info) and not MODELS.is_loaded(name):
        return {"capabilities": info["capabilities"], "configs": info["configs"], "summary": info["summary"]}
    cls = MODELS.get(name)
    return {"capabilities": sorted(cls.capabilities), "configs": list(cls.named_configs),
            "summary": _summary(sys.modules[cls.__module__].__doc__)}
