"""One registry per concept (backends, tasks, benchmarks, methods): the only place names live.

A registry maps a name to an entry, given either as the object itself or lazily as
"module:attribute" (so an optional dependency loads only when its entry is chosen). Third-party
packages add entries through an entry-point group (`recursa.backends`, `recursa.tasks`,
`recursa.benchmarks`, `recursa.methods`); those are read the first time a registry is asked
for a name it does not hold, or for its list of names. Validation anywhere in recursa asks the
registry, whose one-sentence error names the unknown entry and the choices.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Generic, TypeVar

from recursa.errors import UsageError

log = logging.getLogger("recursa")
T = TypeVar("T")


class UnknownName(ValueError):
    """A name no registry entry has; the message is the registry's one sentence."""


class Registry(Generic[T]):
    """Named entries of one kind; built-ins first, then plugins from `group`."""

    def __init__(
        self,
        kind: str,
        group: str,
        *,
        check: Callable[[str, object], T] | None = None,
    ) -> None:
        #: What an entry is, in messages ("backend", "task", ...).
        self.kind = kind
        #: The entry-point group plugins register in.
        self.group = group
        self._check = check
        self._entries: dict[str, T | str] = {}
        self._plugins_read = False

    # -- registration -----------------------------------------------------------------------
    def add(self, name: str, entry: T | str) -> None:
        """Register `entry` (or "module:attribute", loaded when first used) under `name`."""
        if not name or name != name.strip():
            raise ValueError(f"a {self.kind} name must be non-empty text, not {name!r}")
        self._entries[name] = entry

    def remove(self, name: str) -> None:
        """Forget an entry (for tests that register a temporary one)."""
        self._entries.pop(name, None)

    def _read_plugins(self) -> None:
        if self._plugins_read:
            return
        self._plugins_read = True
        for point in metadata.entry_points(group=self.group):
            if point.name in self._entries:
                log.warning(
                    "%s plugin %r (%s) is ignored: the name is taken", self.kind, point.name, point
                )
                continue
            self._entries[point.name] = point.value

    def reload_plugins(self) -> None:
        """Read the entry-point group again (after installing a plugin in this process)."""
        self._plugins_read = False
        self._read_plugins()

    # -- lookup -----------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Every registered name, built-ins first, in registration order."""
        self._read_plugins()
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if name not in self._entries:
            self._read_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def unknown(self, name: object) -> str:
        """The one-sentence error for a name this registry does not hold."""
        return f"unknown {self.kind} {name!r}; choose one of {', '.join(self.names())}"

    def validate(self, name: str) -> str:
        """`name` when registered, else ValueError with `unknown`'s sentence (for pydantic)."""
        if name not in self:
            raise UnknownName(self.unknown(name))
        return name

    def get(self, name: str) -> T:
        """The entry, loaded if it was given as "module:attribute"; UsageError if unknown."""
        if name not in self:
            raise UsageError(self.unknown(name))
        entry = self._entries[name]
        if isinstance(entry, str):
            entry = self._load(name, entry)
            self._entries[name] = entry
        return entry

    def _load(self, name: str, target: str) -> T:
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            raise UsageError(
                f"{self.kind} {name!r} is not available here ({module_name} cannot be imported: "
                f"{exc})"
            ) from exc
        obj: object = module
        for part in attr.split(".") if attr else []:
            obj = getattr(obj, part, None)
            if obj is None:
                raise UsageError(f"{self.kind} {name!r}: {target} does not exist")
        if self._check is None:
            return obj  # type: ignore[return-value]
        try:
            return self._check(name, obj)
        except TypeError as exc:  # a plugin's entry of the wrong kind
            raise UsageError(f"{self.kind} {name!r} ({target}) cannot be used: {exc}") from exc
