"""Decode the ``annotations`` array into numpy columns, fast and in little memory.

The array is cut into *spans* of whole records (byte ranges of the file). Each span is decoded
typed with msgspec on its own, turned into columns and dropped, so no more than one span's
records exist as Python objects at a time. What the columns are and how each field is decoded is
the annotation kind's declaration (``annotation_kind``); raw fields (segmentations) stay JSON
text, addressed by their (offset, length) in the file (:func:`raw_text`).

Spans are found two ways:

* fast (:func:`locate_spans`): a byte search for the ``"annotations"`` array and for record
  boundaries (``}`` , ``{``) near evenly spaced offsets. Nothing here is trusted: a boundary
  inside a record makes its span fail to decode as a JSON array, and the rest of the document
  is decoded with the array cut out, which fails unless the cut was exactly the array. Either
  failure sends the caller to the slow way.
* slow (:func:`spans_from_raws`): from the records of a full top-level decode.

On a multi-core machine the second half of the spans is decoded in a forked process.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from operator import attrgetter
from types import GenericAlias
from typing import BinaryIO

import msgspec
import numpy as np

from explorer.coco._records import FileBytes, Problems, record_id
from explorer.coco.annotation_kind import AnnotationKind, Column, RecordField, SpanContext

SPAN_BYTES = 12 << 20  # about 25k COCO annotations: fine enough to balance two processes
_BOUNDARY = re.compile(rb"\}\s*,\s*\{")
_KEY = re.compile(rb'"annotations"\s*:\s*\[')
_NEXT_KEYS = (b'"categories"', b'"images"', b'"info"', b'"licenses"', b'"type"')


class SpanError(Exception):
    """The fast span search guessed wrong; use the slow way."""


class NotInstancesError(Exception):
    """The file is COCO, but not an instances file (a panoptic one): the message says which."""


# msgspec.Raw is {PyObject_HEAD; PyObject *base; char *buf; Py_ssize_t len}: reading ``buf``
# gives a Raw's address in the buffer it views, 10x faster than the buffer protocol. The layout
# is probed once (``raw_layout_ok``); if it ever differs, segmentations are copied instead.
_RAW_BUF_OFFSET = 24


def address(obj) -> int:
    """Address of the bytes of a buffer-protocol object (one call; slow per object)."""
    return np.frombuffer(obj, np.uint8).ctypes.data if len(obj) else 0


# Reading many Raws' pointers at once views the heap range that holds them as one int64 array
# (only the pointers asked for are touched); a range wider than this is read one by one.
_HEAP_VIEW_LIMIT = 1 << 40


def _raw_addresses(raws: list) -> np.ndarray:
    ids = np.fromiter(map(id, raws), np.int64, len(raws))
    lo, hi = (int(ids.min()), int(ids.max())) if len(ids) else (0, 0)
    if len(ids) and hi - lo < _HEAP_VIEW_LIMIT and not ((ids - lo) % 8).any():
        words = (ctypes.c_int64 * ((hi - lo + _RAW_BUF_OFFSET) // 8 + 1)).from_address(lo)
        return np.frombuffer(memoryview(words), np.int64)[(ids - lo + _RAW_BUF_OFFSET) // 8]
    from_address = ctypes.c_void_p.from_address
    return np.fromiter(
        (from_address(i + _RAW_BUF_OFFSET).value or 0 for i in ids.tolist()), np.int64, len(ids)
    )


def raw_layout_ok() -> bool:
    buf = b'[{"a":[1,2]},{"a":{"b":3}}]'
    raws = [x["a"] for x in msgspec.json.decode(buf, type=list[dict[str, msgspec.Raw]])]
    offsets = _raw_addresses(raws) - address(buf)
    return all(buf[o : o + len(r)] == bytes(r) for o, r in zip(offsets.tolist(), raws, strict=True))


def locate_spans(data: bytes | FileBytes) -> tuple[int, int, list[tuple[int, int]]] | None:
    """Guess ``(array_start, array_stop, spans)`` of the top-level annotations array by byte
    search, or None when the file is too small to gain or has no such array.

    ``data[array_start:array_stop]`` is the array's text without its brackets; each span is a
    ``(start, stop)`` range holding whole records separated by commas.
    """
    m = _KEY.search(data)
    if m is None:
        return None
    start = m.end()
    stop = -1
    for key in _NEXT_KEYS:  # the array ends at the "]" before the next top-level key...
        k = data.rfind(key, start)  # (from the end: quick when the key follows the array)
        close = data.rfind(b"]", start, k) if k >= 0 else -1
        if close >= 0 and re.fullmatch(rb"\]\s*,\s*", data[close:k]):
            stop = close
            break
    if stop < 0:  # ... or the array is the last member: "]" then "}" ends the file
        stop = data.rfind(b"]")
        if stop < start or not re.fullmatch(rb"\]\s*\}\s*", data[stop:]):
            return None
    if stop - start < 4 * SPAN_BYTES:
        return None
    first = data.find(b"{", start, stop)
    if first < 0 or data[start:first].strip():
        return None
    spans = _cut(data, first, stop, SPAN_BYTES)
    return None if spans is None else (start, stop, spans)


def _cut(data: bytes | FileBytes, first: int, stop: int, span_bytes: int) -> list | None:
    """Records from ``first`` (a "{") to ``stop`` cut into spans of about ``span_bytes`` at
    record boundaries found near evenly spaced offsets; None when text follows the last "}"."""
    cuts = [first]
    for target in range(first + span_bytes, stop - span_bytes // 2, span_bytes):
        b = _BOUNDARY.search(data, target, stop)
        if b is None:
            break
        if b.end() - 1 > cuts[-1]:
            cuts.append(b.end() - 1)  # the "{" that opens the next record
    ends = [data.rfind(b"}", a, b) + 1 for a, b in zip(cuts, cuts[1:] + [stop], strict=True)]
    if data[ends[-1] : stop].strip():
        return None
    return list(zip(cuts, ends, strict=True))


_LIST_OPEN = re.compile(rb"\s*\[\s*")


def locate_list_spans(
    data: bytes | FileBytes, span_bytes: int = SPAN_BYTES
) -> list[tuple[int, int]] | None:
    """Spans of whole records of a document that is one JSON array of objects (a COCO results
    file), found by byte search as :func:`locate_spans` finds them: ``[]`` for an empty array,
    None when the document does not look like an array of objects (decode it whole instead).

    Nothing here is trusted either: a cut inside a record makes its span fail to decode.
    """
    m = _LIST_OPEN.match(data)
    stop = data.rfind(b"]")
    if m is None or stop < m.end() - 1 or data[stop + 1 :].strip():
        return None
    first = m.end()
    if first == stop:
        return []
    if data[first : first + 1] != b"{":
        return None
    return _cut(data, first, stop, span_bytes)


def spans_from_raws(
    raws: list[msgspec.Raw], data: bytes | FileBytes, records_per_span: int = 65536
) -> list[tuple[int, int]]:
    """Spans of ``records_per_span`` records from a list of Raw views into ``data``."""
    base = address(data)
    spans = []
    for i in range(0, len(raws), records_per_span):
        first, last = raws[i], raws[min(i + records_per_span, len(raws)) - 1]
        spans.append((address(first) - base, address(last) - base + len(last)))
    return spans


def parse_spans(
    kind: AnnotationKind,
    spans: list[tuple[int, int]],
    data: FileBytes,
    problems: Problems,
    text_out: BinaryIO | None = None,
) -> dict[str, np.ndarray]:
    """Decode the records of ``spans`` into ``kind``'s parsed columns, in file order.

    Each field of the kind is decoded by its own decoder, in declared order. Raw fields (see
    :func:`raw_text`) are addressed in ``data``, or, when ``text_out`` is given, in the blob
    streamed to it. Records that do not fit the schema are skipped and added to ``problems``.

    Raises:
        SpanError: a span is not a run of whole JSON records.
    """
    decode = _SpanDecoder(kind, problems)
    parts: dict[str, list[np.ndarray]] = {c.name: [] for c in kind.parsed}
    written = 0
    for start, stop in spans:
        with bracketed(data, start, stop) as buffer:
            chunk = decode(buffer, start, stop)
            attempt = partial(SpanContext, data, start, text_out=text_out, written=written)
            try:
                span = _decode_fields(kind, chunk, attempt(Problems()))
            except OverflowError:  # an integer beyond int64: redo the span record by record
                chunk = decode.loose(buffer)
                span = _decode_fields(kind, chunk, attempt(Problems()))
        if text_out is not None:  # only a streamed span has pending blobs
            for blob in span.pending:  # what the raw fields address, once the span decoded
                text_out.write(blob)
                written += len(blob)
        problems.merge(span.problems.items)
        for name, values in span.columns.items():
            parts[name].append(values)
    return {c.name: _joined(c, parts[c.name]) for c in kind.parsed}


def _decode_fields(kind: AnnotationKind, chunk: list, span: SpanContext) -> SpanContext:
    for f in kind.fields:
        values = f.decode(f, chunk, span)
        if len(values) != len(f.columns):
            raise TypeError(f"{kind.name}.{f.name}: {len(values)} columns, declared otherwise")
        span.columns.update((c.name, v) for c, v in zip(f.columns, values, strict=True))
    return span


def _joined(column: Column, parts: list[np.ndarray]) -> np.ndarray:
    out = np.concatenate(parts) if parts else column.empty()
    if out.dtype != column.dtype or out.shape[1:] != column.row_shape:
        raise TypeError(f"column {column.name}: {out.dtype} {out.shape[1:]}, declared otherwise")
    return out


def raw_text(field: RecordField, chunk: list, span: SpanContext) -> tuple[np.ndarray, ...]:
    """Decoder of a field kept as raw JSON text (a segmentation): where each record's text lies
    (offset, length) and its first byte (what kind of JSON value it is). The text is only read
    for the few records a user looks at; decoding it all is most of pycocotools' load time.

    A field the record leaves out has length 0 and first byte "n", like ``null``.
    """
    if field.left_out_by_all(chunk):  # nothing to address
        n = len(chunk)
        return np.zeros(n, np.int64), np.zeros(n, np.int64), np.full(n, ord("n"), np.uint8)
    raws = list(map(attrgetter(field.name), chunk))
    lengths = np.fromiter(map(len, raws), np.int64, len(raws))
    if span.text_out is not None:
        offsets, first = _stream(raws, lengths, span)
        return offsets, lengths, first
    offsets, lengths = _offsets_in_file(raws, lengths, span.data, span.start)
    first = np.where(lengths > 0, np.frombuffer(span.data, np.uint8)[offsets], ord("n"))
    return offsets, lengths, first.astype(np.uint8, copy=False)


@contextmanager
def bracketed(data: FileBytes, start: int, stop: int) -> Iterator[memoryview]:
    """``data[start-1:stop+1]`` with its two ends made "[" and "]": the records of one span as
    a JSON array, decoded where they lie (copying 25 MB per span cost as much as a fifth of
    decoding it). The two bytes (a separator, a blank or the array's own bracket) are put back
    after."""
    ends = (start - 1, stop)
    saved = bytes(data[i] for i in ends)
    data[ends[0]], data[ends[1]] = ord("["), ord("]")
    try:
        yield memoryview(data)[start - 1 : stop + 1]
    finally:
        data[ends[0]], data[ends[1]] = saved


class _SpanDecoder:
    """Decodes one span (as a JSON array) into the kind's records, typed in one call; when a
    record does not fit that schema, one record at a time as its loose record (:meth:`loose`),
    skipping and reporting the ones that fit neither. A panoptic record stops the parse."""

    def __init__(self, kind: AnnotationKind, problems: Problems) -> None:
        self.problems = problems
        # list[kind.record], spelled so for a type known only at run time
        self.chunk = msgspec.json.Decoder(GenericAlias(list, (kind.record,)))
        self.raws = msgspec.json.Decoder(list[msgspec.Raw])
        self.one = msgspec.json.Decoder(kind.loose_record)

    def __call__(self, buffer: memoryview, start: int, stop: int) -> list:
        try:
            return self.chunk.decode(buffer)
        except msgspec.ValidationError:
            pass
        except msgspec.DecodeError as e:
            raise SpanError(f"span {start}-{stop}: {e}") from None
        return self.loose(buffer)

    def loose(self, buffer: memoryview) -> list:
        chunk = []
        for raw in self.raws.decode(buffer):
            try:
                chunk.append(self.one.decode(raw))
            except msgspec.ValidationError as e:
                if b'"segments_info"' in bytes(raw):
                    raise NotInstancesError(
                        "a COCO panoptic file (annotations hold 'segments_info' and a PNG), not "
                        "an instances file: open the matching instances file"
                    ) from None
                self.problems.add(
                    "bad_annotation_record",
                    "annotation records that do not fit the COCO schema (skipped)",
                    {"id": record_id(raw), "error": str(e)},
                )
        return chunk


def _stream(raws: list, lengths: np.ndarray, span: SpanContext) -> tuple[np.ndarray, np.ndarray]:
    """Queue the raw texts for the blob (written once the span is done); return their offsets
    in the blob and their first bytes."""
    blob = b"".join(raws)
    offsets = np.cumsum(lengths) - lengths + span.written + sum(map(len, span.pending))
    first = (
        np.frombuffer(blob, np.uint8)[np.cumsum(lengths) - lengths]
        if len(raws)
        else (lengths[:0].astype(np.uint8))
    )
    span.pending.append(blob)
    return offsets, first


def _offsets_in_file(
    segs: list, lengths: np.ndarray, data: FileBytes, start: int
) -> tuple[np.ndarray, np.ndarray]:
    """Where each raw segmentation lies in ``data``: ``(offsets, lengths)``.

    Each Raw views ``data`` itself (decoded in place, see :func:`bracketed`), except the
    schema's default for a missing segmentation, which lies elsewhere: it gets length 0.
    """
    n = len(segs)
    offsets = _raw_addresses(segs) - address(data)
    missing = (offsets < start) | (offsets >= len(data))
    offsets = np.where(missing, 0, offsets)
    lengths = np.where(missing, 0, lengths)
    for i in {0, n - 1} if n else ():  # cheap proof that the offsets address the file
        if lengths[i] and data[offsets[i] : offsets[i] + lengths[i]] != bytes(segs[i]):
            raise RuntimeError("segmentation offsets do not address the annotation file")
    return offsets, lengths


class ForkedCall:
    """Run ``fn()`` in a forked child process and collect its (picklable) result.

    Decoding is CPU-bound and holds the GIL, so a second core needs a second process; fork
    shares the file's bytes without copying. Fork is used only where it is safe: a process
    with a single thread (the CLI, not the Streamlit server) on a machine with 2+ cores.
    Elsewhere ``result()`` simply calls ``fn`` in this process.
    """

    def __init__(self, fn: Callable[[], object]) -> None:
        self.fn, self.pid = fn, None
        if not hasattr(os, "fork") or threading.active_count() > 1 or (os.cpu_count() or 1) < 2:
            return
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: run, send the outcome back pickled, exit without cleanup
            os.close(read_end)
            try:
                outcome = ("ok", fn())
            except BaseException as e:  # noqa: BLE001 - re-raised in the parent
                outcome = ("error", e)
            with os.fdopen(write_end, "wb") as out:
                try:
                    pickle.dump(outcome, out, protocol=pickle.HIGHEST_PROTOCOL)
                except Exception as e:  # noqa: BLE001
                    pickle.dump(("error", RuntimeError(repr(e))), out)
            os._exit(0)
        os.close(write_end)
        self.pid, self.read_end = pid, read_end

    def result(self):
        if self.pid is None:
            return self.fn()
        with os.fdopen(self.read_end, "rb") as inp:
            try:
                status, value = pickle.load(inp)
            except EOFError:
                status, value = "error", RuntimeError("the parsing process died")
        os.waitpid(self.pid, 0)
        self.pid = None
        if status != "ok":
            raise value
        return value

    def discard(self) -> None:
        """Stop and reap the child, if any, without running ``fn`` here."""
        if self.pid is None:
            return
        import signal

        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        os.close(self.read_end)
        self.pid = None


def concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
