"""Name -> object registries (models, metrics, feature extractors): extension without edits.

A plugin registers itself with a decorator at import time, e.g. ``@register_model("cgan")``.
Third-party packages can add plugins without editing exprbench by declaring an entry point in
the group ``exprbench.models`` (or ``exprbench.metrics``) that points to a module to import.
"""

from __future__ import annotations

from importlib import metadata
from typing import Callable, Generic, Iterator, TypeVar

from .errors import RegistryError

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
            self._items[name] = obj
            return obj

        return deco

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
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise RegistryError(f"unknown {self.kind} {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        self._scan()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._scan()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
