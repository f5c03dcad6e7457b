"""Name -> object registries (models, metrics, feature extractors): extension without edits.

A plugin registers itself with a decorator at import time, e.g. ``@register_model("cgan")``.
Third-party packages can add plugins without editing exprbench by declaring an entry point in
the group ``exprbench.models`` (or ``exprbench.metrics``) that points to a module to import.
A name can also be declared lazily (:meth:`Registry.register_lazy`): its module is imported on the
first :meth:`Registry.get`, so listing names never imports torch.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from typing import Callable, Generic, Iterator, TypeVar

from exprbench.core.errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """A case-sensitive mapping from a plugin name to the registered object.

    Args:
        kind: what is registered ("model", "metric", ...), used in error messages.
        entry_point_group: setuptools entry-point group scanned once, on first lookup.
    """

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._lazy: dict[str, str] = {}
        self._group = entry_point_group
        self._scanned = entry_point_group is None

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``.

        Raises:
            RegistryError: if ``name`` is already taken by another object.
        """

        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise RegistryError(f"{self.kind} {name!r} is registered twice")
            lazy = self._lazy.get(name)
            if lazy is not None and lazy != getattr(obj, "__module__", lazy):
                raise RegistryError(f"{self.kind} {name!r} is registered twice ({lazy} and {obj.__module__})")
            self._items[name] = obj
            return obj

        return deco

    def register_lazy(self, name: str, module: str) -> None:
        """Declare ``name`` as provided by ``module`` (imported on the first :meth:`get` of ``name``;
        the module registers the object itself with :meth:`register`).

        Raises:
            RegistryError: ``name`` is already declared by another module.
        """
        if self._lazy.get(name, module) != module:
            raise RegistryError(f"{self.kind} {name!r} is registered twice ({self._lazy[name]} and {module})")
        self._lazy[name] = module

    def is_loaded(self, name: str) -> bool:
        """True when ``name``'s object is registered (its module imported), False for a lazy or unknown name."""
        return name in self._items

    def _scan(self) -> None:
        if self._scanned:
            return
        self._scanned = True
        for ep in metadata.entry_points(group=self._group):
            ep.load()

    def get(self, name: str) -> T:
        """Return the object registered as ``name``.

        Raises:
            RegistryError: unknown name; the message lists the known ones.
        """
        self._scan()
        if name not in self._items and name in self._lazy:
            importlib.import_module(self._lazy[name])
        try:
            return self._items[name]
        except KeyError:
            if name in self._lazy:
                raise RegistryError(f"{self.kind} {name!r}: {self._lazy[name]} did not register it") from None
            known = ", ".join(self.names()) or "none"
            raise RegistryError(f"unknown {self.kind} {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        """Registered names (lazy ones included), sorted."""
        self._scan()
        return sorted(set(self._items) | set(self._lazy))

    def __contains__(self, name: object) -> bool:
        self._scan()
        return name in self._items or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
