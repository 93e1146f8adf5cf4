"""Typed records into numpy columns: what every step of the parse shares.

Ids as labelling tools write them (numbers or strings), number columns, the report of records
that do not fit (:class:`Problems`), and the lookup of ids into rows.
"""

from __future__ import annotations

import hashlib
import mmap
from collections.abc import Callable
from operator import attrgetter
from types import GenericAlias
from typing import TypedDict, TypeVar

import msgspec
import numpy as np

from explorer.coco.health import MAX_EXAMPLES, Finding, Severity

FileBytes = mmap.mmap | bytearray  # writable: see _build.read_file

Record = TypeVar("Record")


class Problems:
    """Bad records found while parsing: grouped by check, with a few examples each."""

    def __init__(self) -> None:
        self.items: dict[str, Finding] = {}

    def add(self, check: str, message: str, example: object, severity: Severity = "error") -> None:
        item = self.items.setdefault(
            check,
            {"check": check, "severity": severity, "count": 0, "message": message, "examples": []},
        )
        item["count"] += 1
        if len(item["examples"]) < MAX_EXAMPLES:
            item["examples"].append(example)

    def merge(self, items: dict[str, Finding]) -> None:
        """Add another attempt's or process's ``items`` (a span's, the forked parser's)."""
        for check, item in items.items():
            mine = self.items.setdefault(check, {**item, "count": 0, "examples": []})
            mine["count"] += item["count"]
            mine["examples"] = (mine["examples"] + item["examples"])[:MAX_EXAMPLES]

    def add_rows(
        self,
        check: str,
        message: str,
        rows: np.ndarray,
        example: Callable[[int], object],
        severity: Severity = "error",
    ) -> None:
        """Record every row of ``rows``; examples (``example(row)``) for the first few."""
        for i in rows[:MAX_EXAMPLES]:
            self.add(check, message, example(int(i)), severity)
        if len(rows) > MAX_EXAMPLES:
            self.items[check]["count"] += len(rows) - MAX_EXAMPLES


class BadRecord(TypedDict):
    """A record that does not fit the COCO schema, and why: the example its finding gives."""

    id: object  # as the file writes it ("?" when the record has none, or is not JSON)
    error: str


def record_id(raw: msgspec.Raw) -> object:
    """The ``id`` of a raw record, for a report ("?" when it has none or is not JSON)."""
    try:
        obj = msgspec.json.decode(raw)
        return obj.get("id", "?") if isinstance(obj, dict) else "?"
    except msgspec.DecodeError:
        return "?"


def typed_records(
    raws: list[msgspec.Raw], typ: type[Record], what: str, problems: Problems
) -> list[Record]:
    """Decode raw records; if one does not fit ``typ``, redo them one by one, skipping bad ones."""
    try:
        # list[typ], spelled so for a type known only at run time
        every: list[Record] = msgspec.json.decode(
            b"[" + b",".join(raws) + b"]", type=GenericAlias(list, (typ,))
        )
        return every
    except msgspec.ValidationError:
        pass
    one = msgspec.json.Decoder(typ)
    good: list[Record] = []
    for raw in raws:
        try:
            good.append(one.decode(raw))
        except msgspec.ValidationError as e:
            bad: BadRecord = {"id": record_id(raw), "error": str(e)}
            problems.add(
                f"bad_{what}_record",
                f"{what} records that do not fit the COCO schema (skipped)",
                bad,
            )
    return good


def column(items: list, field: str, dtype) -> np.ndarray:
    """Field ``field`` of every typed record, as one array (raises OverflowError past int64)."""
    return np.fromiter(map(attrgetter(field), items), dtype, len(items))


def string_id(value: str) -> int:
    """The int64 a string id stands for: a decimal string its value ("0" -> 0), any other
    string a stable hash below -2**62, the same in every process (and never a COCO id)."""
    try:
        number = int(value)
        if -(2**62) <= number < 2**63:
            return number
    except ValueError:
        pass
    digest = hashlib.blake2b(value.encode("utf-8", "replace"), digest_size=8).digest()
    return -(2**62) - (int.from_bytes(digest, "little") >> 2)


def id_column(items: list, field: str) -> np.ndarray:
    """An id column as int64; string ids are mapped by :func:`string_id` (the slow way, taken
    only when the fast one meets a string numpy cannot read as an integer)."""
    try:
        return column(items, field, np.int64)
    except (ValueError, TypeError, OverflowError):
        values = map(attrgetter(field), items)
        ids = (v if isinstance(v, int) else string_id(v) for v in values)
        return np.fromiter(ids, np.int64, len(items))


def lookup(keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Row in ``keys`` (unique) of each query, -1 where absent."""
    if not len(keys) or not len(queries):
        return np.full(len(queries), -1, dtype=np.int64)
    lo, hi = int(keys.min()), int(keys.max())
    if hi - lo <= 16 * len(keys) + 4096:  # COCO ids are dense enough for a direct table
        table = np.full(hi - lo + 1, -1, dtype=np.int64)
        table[keys - lo] = np.arange(len(keys))
        inside = (queries >= lo) & (queries <= hi)
        return np.where(inside, table[np.where(inside, queries - lo, 0)], -1)
    order = np.argsort(keys, kind="stable")
    ks = keys[order]
    pos = np.minimum(np.searchsorted(ks, queries), len(ks) - 1)
    return np.where(ks[pos] == queries, order[pos], -1)
