"""Tiny validated registries: build components by name, never by if/elif chains over strings.

An entry may carry options of its own: a dataclass whose fields (type, default, trailing comment) become
config keys beside its section's common keys once the entry is selected. A loss registered as

    @dataclass
    class MarginOptions:
        margin: float = 1.0   # where the hinge starts

    LOSSES.register("margin-hinge", options=MarginOptions)(AdversarialLoss(...))

is configured with `--set loss.name=margin-hinge --set loss.margin=2`. `ganforge.components` checks such keys,
fills in their defaults and saves them with the config; the registry only records them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, TypeVar

from .errors import GanforgeError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    options: type | None   # dataclass of the entry's own options, or None
    doc: str               # one line: what the entry is (shown by `ganforge presets` and the docs)


def _first_line(obj: Any) -> str:
    for attr in ("doc", "describe"):
        v = getattr(obj, attr, None)
        if isinstance(v, str) and v:
            return v
    doc = getattr(obj, "__doc__", None) if callable(obj) and not dataclasses.is_dataclass(obj) else None
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""


class Registry(Generic[T]):
    """A name -> object map that refuses duplicates and explains unknown names."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Entry[T]] = {}

    def register(self, name: str, *, options: type | None = None, doc: str = "") -> Callable[[T], T]:
        """Decorator (or call on an object) adding `name`; `options`: a dataclass of the entry's own settings."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind}: a registry name must be a non-empty string, got {name!r}")
        if options is not None and not (isinstance(options, type) and dataclasses.is_dataclass(options)):
            raise TypeError(f"{self.kind} {name!r}: options must be a dataclass type, got {options!r}")

        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = Entry(name, obj, options, doc or _first_line(obj))
            return obj

        return deco

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise GanforgeError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(sorted(self._items))}"
            ) from None

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def options(self, name: str) -> type | None:
        return self.entry(name).options

    def doc(self, name: str) -> str:
        return self.entry(name).doc

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
