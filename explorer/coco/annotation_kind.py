"""What an annotation kind is: its columns, declared once, and how it checks and reports them.

An :class:`AnnotationKind` ("objects with geometry", later keypoints, captions...) declares
the fields of its records (:class:`RecordField`: name, types, missing value, decoder) and the
columns each decodes into (:class:`Column`: name, dtype, row shape); the columns its validation
computes; its validation; its health findings. Everything else is derived from that one
declaration: the typed records the parser decodes (:attr:`AnnotationKind.record`), the columns
the parser emits, those ``CocoIndex`` holds, and the ``.npy`` files of the index cache.
Kinds are registered in ``explorer.coco.kinds``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from itertools import repeat
from typing import BinaryIO

import msgspec
import numpy as np

from explorer.coco._records import FileBytes, Problems
from explorer.coco.health import Finding
from explorer.types import Category

# A RecordField without a missing value: a record that leaves it out is skipped.
REQUIRED = msgspec.NODEFAULT


@dataclass(frozen=True)
class Column:
    """One column of a kind's table."""

    name: str
    dtype: str  # a numpy dtype name; the build refuses an array of another dtype
    row_shape: tuple[int, ...] = ()  # each row's shape: (4,) for an x y w h box
    # False: a column the kind's validation reads while building, not kept in the index
    stored: bool = True

    def empty(self) -> np.ndarray:
        return np.zeros((0, *self.row_shape), self.dtype)


@dataclass
class SpanContext:
    """What a decoder sees besides its span's typed records (see ``_annotations.parse_spans``).

    ``problems`` are this attempt's (kept only if every field decodes); ``columns`` holds the
    columns of the fields declared before this one. Raw text kept by address: ``data`` and
    ``start`` (where the span lies in it) when it addresses the file, else ``text_out`` (the
    blob it goes to: ``written`` bytes so far, ``pending`` this span's, written once it is done).
    """

    data: FileBytes
    start: int
    problems: Problems
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    text_out: BinaryIO | None = None
    written: int = 0
    pending: list[bytes] = field(default_factory=list)


# (the field, a span's typed records, its context) -> one array per column of the field, in order
Decoder = Callable[["RecordField", list, SpanContext], tuple[np.ndarray, ...]]


@dataclass(frozen=True)
class RecordField:
    """A field of a kind's annotation record and the columns it is decoded into.

    ``fast`` is its type in the schema most files fit; ``loose`` in the one any tool fits (a
    span that fails the fast schema is decoded again record by record with it). ``missing`` is
    the value of a record that leaves the field out (``loose_missing`` where the loose schema's
    differs); REQUIRED skips such a record. ``decode`` may raise OverflowError (an integer
    beyond int64): the span is then decoded again with the loose schema.
    """

    name: str
    fast: object
    loose: object
    columns: tuple[Column, ...]
    decode: Decoder
    missing: object = REQUIRED
    loose_missing: object = REQUIRED

    def left_out_by_all(self, chunk: list) -> bool:
        """Whether every record of ``chunk`` has the field's missing value (this very object:
        what msgspec gives a record that leaves it out), looking up to the first that has not:
        a field no record gives (keypoints in an instances file) costs little to decode."""
        values = map(operator.attrgetter(self.name), chunk)
        return all(map(operator.is_, values, repeat(self.missing)))

    def schema_entry(self, loose: bool) -> tuple:
        """The field as ``msgspec.defstruct`` takes it."""
        default = self.missing
        if loose and self.loose_missing is not REQUIRED:
            default = self.loose_missing
        typ = self.loose if loose else self.fast
        return (self.name, typ) if default is REQUIRED else (self.name, typ, default)


# Every kind's: each annotation's image row (its validation computes it, dropping the
# annotations of unknown images), and its rows sorted by image row (the build computes it).
IMAGE_ROW = Column("image_row", "int32")
BY_IMAGE = Column("by_image", "int64")


@dataclass(frozen=True)
class Validated:
    """What a kind's validation returns: the annotations to keep (a mask over the parsed rows)
    and the columns it derived (over all parsed rows; IMAGE_ROW among them)."""

    keep: np.ndarray
    derived: dict[str, np.ndarray]


@dataclass(frozen=True)
class Tables:
    """What validation and findings see: the images' columns, the categories, and the raw text
    the kind's raw fields address (the file or the blob of copies)."""

    images: dict[str, np.ndarray]
    categories: list[Category]
    text: bytes | FileBytes


@dataclass(frozen=True)
class AnnotationKind:
    """One kind of annotation: its declaration, its validation, its findings.

    Attributes:
        name: the key of its table in ``CocoIndex.tables`` and of its files in the cache.
        fields: its record's fields, in decoding order (a decoder may read the columns of the
            fields before it).
        derived: columns its validation computes (IMAGE_ROW among them).
        validate: ``(parsed columns, tables, problems) -> Validated``; reports what it drops.
        findings: ``(images, its kept table, categories) -> findings`` about kept annotations.
        image_start: the image column where each image's rows start in BY_IMAGE (an image's
            annotations are ``by_image[start[r]:start[r+1]]``).
    """

    name: str
    fields: tuple[RecordField, ...]
    derived: tuple[Column, ...]
    validate: Callable[[dict[str, np.ndarray], Tables, Problems], Validated]
    findings: Callable[[dict, dict, list[Category]], list[Finding]]
    image_start: str

    @cached_property
    def parsed(self) -> tuple[Column, ...]:
        """The columns the parser emits, in order."""
        return tuple(c for f in self.fields for c in f.columns)

    @cached_property
    def columns(self) -> tuple[Column, ...]:
        """The columns of its table in the index and the cache."""
        kept = tuple(c for c in self.parsed if c.stored)
        return (*kept, *self.derived, BY_IMAGE)

    @cached_property
    def record(self) -> type[msgspec.Struct]:
        """The typed record of the fast schema (about 30% quicker to decode than the loose)."""
        return self._struct(loose=False)

    @cached_property
    def loose_record(self) -> type[msgspec.Struct]:
        """The typed record any tool's file fits (string ids, ``bbox: []``...)."""
        return self._struct(loose=True)

    def _struct(self, loose: bool) -> type[msgspec.Struct]:
        name = f"{self.name.title()}{'Loose' if loose else ''}Record"
        entries = [f.schema_entry(loose) for f in self.fields]
        return msgspec.defstruct(name, entries, kw_only=True, gc=False)
