"""Model plugins. Importing this package registers the built-in models.

A plugin is a :class:`~exprbench.models.base.ModelPlugin` subclass registered with
``@register_model("name")``; see ``models/base.py`` for the contract.
"""

from __future__ import annotations

from exprbench.registry import Registry

MODELS: Registry = Registry("model", entry_point_group="exprbench.models")
register_model = MODELS.register


def get_model(name: str):
    """Return the plugin class registered as ``name`` (raises RegistryError when unknown)."""
    return MODELS.get(name)


from . import acgan, bicogan, bigan, ccyclegan, cgan, flow, gan, interfacegan, vae  # noqa: E402,F401  (registration side effects)
