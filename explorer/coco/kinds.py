"""The registry of annotation kinds: a new kind is one ``AnnotationKind`` and one line here.

The index parses with a kind looked up here and keeps one table per kind; its cache names the
kinds it holds and reads their columns back by what each kind declares.
"""

from __future__ import annotations

from types import MappingProxyType

from explorer.coco.annotation_kind import AnnotationKind
from explorer.coco.instances import INSTANCES

_REGISTERED: dict[str, AnnotationKind] = {}
KINDS = MappingProxyType(_REGISTERED)
"""Every registered kind, by name (read-only; see :func:`register`)."""


def register(kind: AnnotationKind) -> AnnotationKind:
    """Add ``kind`` to the registry; a second kind of the same name is a mistake."""
    if kind.name in _REGISTERED:
        raise ValueError(f"an annotation kind named {kind.name!r} is already registered")
    _REGISTERED[kind.name] = kind
    return kind


def get(name: str) -> AnnotationKind:
    """The registered kind called ``name``; raises ``KeyError`` when there is none."""
    return _REGISTERED[name]


register(INSTANCES)
