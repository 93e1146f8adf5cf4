"""A COCO results file (what pycocotools' ``COCO.loadRes`` reads) as validated numpy columns.

Every column holds what ``loadRes`` gives pycocotools, in float64, so that an evaluation on
them can equal ``COCOeval`` exactly. ``loadRes`` takes its rules for ``area`` and ``bbox`` from
the first record alone; here from the first record kept:

* it has a non-empty ``bbox``: every record's area is its box's ``w * h`` (even in segm
  evaluation: detectron2 and mmdet write a box and a mask, and the box area is what COCOeval's
  area ranges then see);
* else it has a segmentation: the area is ``maskUtils.area`` of the RLE, and a record without
  a box gets ``maskUtils.toBbox`` of it;
* else (keypoints): the box is the extent of all x and all y entries, unlabelled zeros
  included, and the area that box's.

A record without what the first one decides on gets the nearest thing (the box of its RLE; its
box's area) where ``loadRes`` would raise. Where ``loadRes`` refuses the whole file (an image id
not in the ground truth, a missing score, an empty list), records are skipped and counted by
reason (``Detections.skipped``) instead, never silently. Ids written as strings are read as the
index reads them (``coco._records.string_id``), so a file of the same tool matches.

Files are decoded span by span (see ``_records``), so a large file never becomes millions of
Python objects at once.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Literal

import msgspec
import numpy as np

from explorer.coco._build import read_file
from explorer.coco._records import FileBytes, lookup, string_id
from explorer.coco.index import CocoIndex
from explorer.errors import DatasetError, PredictionsError
from explorer.predictions import _geometry
from explorer.predictions._records import (
    BAD_BOX,
    BAD_KEYPOINTS,
    BAD_SCORE,
    CODE,
    NEGATIVE_BOX,
    NO_BOX_OR_MASK,
    NO_KEYPOINTS,
    NO_SEGMENTATION,
    REASONS,
    UNKNOWN_CATEGORY,
    UNKNOWN_IMAGE,
    Chunk,
    ChunkDecoder,
    SpanError,
    file_chunks,
    python_json,
    record_type,
    span_objects,
    whole_file_chunks,
)
from explorer.types import RESULT_KINDS, ResultKind

# Keypoints per record of a category whose count the index does not know: COCO's 17 people's.
DEFAULT_KEYPOINTS = 17
# How loadRes computes area and bbox, decided by the first record (see the module's doc).
Branch = Literal["box", "mask", "keypoints"]


@dataclass(frozen=True)
class RleColumn:
    """Compressed COCO RLEs, columnar: record i is ``counts[offsets[i]:offsets[i+1]]`` (ASCII
    bytes as pycocotools' compressed ``counts``), of size ``heights[i] x widths[i]``."""

    heights: np.ndarray  # int64
    widths: np.ndarray  # int64
    counts: bytes
    offsets: np.ndarray  # int64, n + 1

    def __len__(self) -> int:
        return len(self.heights)

    def rle(self, i: int) -> dict:
        """Record ``i`` as pycocotools takes it: ``{"size": [h, w], "counts": bytes}``."""
        start, stop = int(self.offsets[i]), int(self.offsets[i + 1])
        return {
            "size": [int(self.heights[i]), int(self.widths[i])],
            "counts": self.counts[start:stop],
        }

    def rles(self, rows: np.ndarray) -> list[dict]:
        """The records at ``rows``, as :meth:`rle` gives each."""
        return [self.rle(i) for i in np.asarray(rows, np.int64).tolist()]


@dataclass(frozen=True)
class Detections:
    """One COCO results file's records of one kind, columnar, in file order, bad records
    removed.

    Attributes:
        path: the file (None for records given in memory).
        kind: what the records are scored as (pycocotools' iouType).
        image_id, category_id: int64 (string ids as the index maps them).
        score: float64.
        bbox: ``(n, 4)`` float64, x y w h, as loadRes leaves it: the given box; else toBbox
            of the RLE; else the keypoints' extent.
        area: float64, as loadRes computes it (see the module's doc).
        rles: kind "segm": one compressed RLE per record, at its image's size.
        keypoints: kind "keypoints": ``(n, 3 * K)`` float64 (NaN past a record of a category
            with fewer keypoints than the most of any).
        skipped: why records were skipped (a short phrase) -> how many.
    """

    path: Path | None
    kind: ResultKind
    image_id: np.ndarray
    category_id: np.ndarray
    score: np.ndarray
    bbox: np.ndarray
    area: np.ndarray
    rles: RleColumn | None
    keypoints: np.ndarray | None
    skipped: dict[str, int]

    @property
    def num_skipped(self) -> int:
        return sum(self.skipped.values())

    def __len__(self) -> int:
        return len(self.image_id)


@dataclass(frozen=True)
class _KindRules:
    """What records of a kind must carry, and what their columns keep."""

    fields: tuple[str, ...]  # the record fields read
    missing: str  # why a record without the kind's geometry is skipped
    masks: bool  # every record needs a segmentation (kept as RLE), not only a box-less one
    keypoints: bool  # every record needs keypoints (kept)


_BOX_FIELDS = ("image_id", "category_id", "score", "bbox", "segmentation")
_RULES: dict[ResultKind, _KindRules] = {
    "bbox": _KindRules(_BOX_FIELDS, NO_BOX_OR_MASK, masks=False, keypoints=False),
    "segm": _KindRules(_BOX_FIELDS, NO_SEGMENTATION, masks=True, keypoints=False),
    "keypoints": _KindRules(
        ("image_id", "category_id", "score", "bbox", "keypoints"),
        NO_KEYPOINTS,
        masks=False,
        keypoints=True,
    ),
}


def read_results(path: str | Path, index: CocoIndex, kind: ResultKind | None = None) -> Detections:
    """Read a COCO results file of ``kind`` (None: guessed from its first record as ``bbox``,
    ``segm`` or ``keypoints``) against the ground truth ``index``.

    Raises:
        PredictionsError: the file is missing, unreadable, not JSON, or not a list of results
            (an instances file given as results says so). An empty list is 0 records.
    """
    path = Path(path)
    data = _results_bytes(path)
    return _detections(data, path, index, kind)


def _results_bytes(path: Path) -> FileBytes:
    """The bytes of a results file, refused in one line when it is not a list of results."""
    try:
        data = read_file(path, what="a results file")
    except DatasetError as e:
        raise PredictionsError(str(e)) from None
    _check_top_level(path, data)
    return data


def available_kinds(path: str | Path) -> tuple[ResultKind, ...]:
    """What a results file can be scored as, from its first record that holds any geometry:
    pycocotools' guess first (see :func:`read_results`), then the others it carries (a mask
    also gives a box). An empty list gives ``("bbox",)``.

    Raises:
        PredictionsError: as :func:`read_results`.
    """
    path = Path(path)
    data = _results_bytes(path)
    try:
        with closing(_chunks(data)) as chunks:
            first = _first_with_geometry(chunks)
    except SpanError:
        with closing(whole_file_chunks(data)) as chunks:
            first = _first_with_geometry(chunks)
    except msgspec.DecodeError as e:
        raise PredictionsError(f"{path}: not valid JSON ({e})") from None
    if first is None:
        return ("bbox",)
    carried = {
        "bbox": first.get("bbox") not in (None, []) or first.get("segmentation") is not None,
        "segm": first.get("segmentation") is not None,
        "keypoints": first.get("keypoints") is not None,
    }
    guess = _guess_kind([[first]])
    return (guess, *(k for k in RESULT_KINDS if carried[k] and k != guess))


def _first_with_geometry(chunks: Iterable) -> dict | None:
    for chunk in chunks:
        objects = chunk if isinstance(chunk, list) else _objects(chunk)
        for obj in objects:
            if isinstance(obj, dict) and any(
                obj.get(field) not in (None, []) for field in ("bbox", "segmentation", "keypoints")
            ):
                return obj
    return None


def detections_from_records(
    records: list[dict],
    index: CocoIndex,
    kind: ResultKind | None = None,
    path: str | Path | None = None,
) -> Detections:
    """:func:`read_results` of records in memory (as ``json.load`` gives them, or as a model
    writes them: numpy numbers and arrays, ``bytes`` RLE counts); checked and skipped alike."""
    if not isinstance(records, list):
        raise PredictionsError(f"{path or 'results'}: not a list of results records")
    data = bytearray(json.dumps(records, default=_plain).encode())
    return _detections(data, Path(path) if path is not None else None, index, kind)


def _plain(value: object) -> object:
    """What ``json`` cannot write, as JSON values: numpy numbers and arrays, bytes."""
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return repr(value)  # anything else: a value no field accepts, so its record is skipped


class _ObjectTop(msgspec.Struct):
    """A JSON object's members that make it an instances file (empty: absent)."""

    images: msgspec.Raw = msgspec.Raw(b"")
    annotations: msgspec.Raw = msgspec.Raw(b"")


def _check_top_level(path: Path, data: FileBytes) -> None:
    """Refuse, in one line, a file that is not a JSON list (decoding nothing when it is one)."""
    blank = re.compile(rb"\s*").match(data)
    first = data[blank.end() : blank.end() + 1] if blank else b""
    if first == b"[":
        return
    try:
        top = msgspec.json.decode(data, type=_ObjectTop if first == b"{" else object)
    except msgspec.ValidationError:
        top = None
    except msgspec.DecodeError as e:
        raise PredictionsError(f"{path}: not valid JSON ({e})") from None
    if isinstance(top, _ObjectTop) and (len(top.images) or len(top.annotations)):
        raise PredictionsError(
            f"{path}: a COCO instances file, not a results file (a list of detections): "
            "give it as --coco, and the detections computed on it as --results (--predictions "
            "in the app)"
        )
    what = "object" if first == b"{" else type(top).__name__
    raise PredictionsError(
        f"{path}: not a COCO results file (a JSON {what}, not a list of detections)"
    )


def _detections(
    data: FileBytes, path: Path | None, index: CocoIndex, kind: ResultKind | None
) -> Detections:
    where = path or "results"
    try:
        try:
            return _read_all(data, _chunks, path, index, kind)
        except SpanError:  # the byte search cut a record: decode the file whole
            return _read_all(data, whole_file_chunks, path, index, kind)
    except msgspec.DecodeError as e:  # ValidationError included: not an array
        raise PredictionsError(f"{where}: not valid JSON ({e})") from None
    except UnicodeDecodeError as e:
        raise PredictionsError(f"{where}: not valid UTF-8 text ({e.reason})") from None


Chunks = Generator[memoryview | bytes | list, None, None]


def _read_all(
    data: FileBytes,
    cut: Callable[[FileBytes], Chunks],
    path: Path | None,
    index: CocoIndex,
    kind: ResultKind | None,
) -> Detections:
    """The records of ``data`` in the chunks ``cut`` gives, of ``kind`` (guessed when None).
    Each pass over the chunks is closed when it ends, however: a span decoded in place has
    its two ends bracketed until then (``coco._annotations.bracketed``)."""
    if kind is None:
        with closing(cut(data)) as chunks:
            kind = _guess_kind(chunks)
    with closing(cut(data)) as chunks:
        return _read(chunks, path, index, kind)


def _chunks(data: FileBytes) -> Chunks:
    chunks = file_chunks(data)
    yield from chunks if chunks is not None else whole_file_chunks(data)


def _guess_kind(chunks: Iterable) -> ResultKind:
    """pycocotools' order: a non-empty ``bbox`` makes it bbox, else a ``segmentation`` segm,
    else ``keypoints``; from the first record that has any (bbox when none has)."""
    for chunk in chunks:
        objects = chunk if isinstance(chunk, list) else _objects(chunk)
        for obj in objects:
            if not isinstance(obj, dict):
                continue
            if obj.get("bbox") not in (None, []):
                return "bbox"
            if obj.get("segmentation") is not None:
                return "segm"
            if obj.get("keypoints") is not None:
                return "keypoints"
    return "bbox"


def _objects(buffer: memoryview | bytes) -> Iterable:
    try:
        return span_objects(buffer)
    except msgspec.DecodeError:
        return python_json(buffer)


@dataclass(frozen=True)
class _Truth:
    """What records are checked against: the ground truth's images and categories."""

    image_ids: np.ndarray
    heights: np.ndarray  # by image row, int64
    widths: np.ndarray
    category_ids: np.ndarray
    keypoint_lengths: np.ndarray  # numbers per record (3 per keypoint), by category row

    @classmethod
    def of(cls, index: CocoIndex) -> _Truth:
        counts = [_keypoint_count(c) for c in index.categories]
        return cls(
            image_ids=np.asarray(index.images["id"], np.int64),
            heights=np.asarray(index.images["height"], np.int64),
            widths=np.asarray(index.images["width"], np.int64),
            category_ids=index.category_ids,
            keypoint_lengths=3 * np.array(counts, np.int64),
        )


def _keypoint_count(category: Mapping[str, object]) -> int:
    """Keypoints per record of a category: its ``keypoints`` names where the index keeps them."""
    names = category.get("keypoints")
    return len(names) if isinstance(names, list) and names else DEFAULT_KEYPOINTS


def _read(chunks: Iterable, path: Path | None, index: CocoIndex, kind: ResultKind) -> Detections:
    """Decode ``chunks`` span by span into columns of the records ``kind`` keeps."""
    rules, truth = _RULES[kind], _Truth.of(index)
    decode = ChunkDecoder(record_type(rules.fields))
    parts: list[_Part] = []
    skipped: Counter = Counter()
    branch: Branch | None = None
    for buffer in chunks:
        chunk: Chunk = decode(buffer)
        skipped.update(chunk.skipped)
        span = _checked_span(chunk.records, rules, truth)
        branch = branch or span.branch()
        if branch == "mask" and not rules.masks:  # the areas are masks': of boxed records too
            rows = np.flatnonzero(span.kept & span.box_given)
            _add_masks(span, chunk.records, rows, truth, None)
        codes = np.bincount(span.reason, minlength=len(REASONS))
        skipped.update({REASONS[c]: int(codes[c]) for c in np.flatnonzero(codes[1:]) + 1})
        parts.append(_kept_part(span, branch, rules))
        del chunk, span
    return _joined(parts, truth, path, kind, dict(skipped))


class _Span:
    """One span's records as columns, and why each is skipped (``reason``, 0: kept), filled
    in by the checks in turn; a record keeps the first reason it fails for."""

    def __init__(self, records: list, truth: _Truth) -> None:
        n = len(records)
        image_id, has_image = _ids(records, "image_id")
        category_id, has_category = _ids(records, "category_id")
        self.image_id, self.category_id = image_id, category_id
        self.image_row = np.where(has_image, lookup(truth.image_ids, image_id), -1)
        self.category_row = np.where(has_category, lookup(truth.category_ids, category_id), -1)
        self.score = _scores(records)
        self.box, self.box_state = _boxes(records)
        self.box_given = self.box_state == _GIVEN
        self.reason = np.zeros(n, np.int16)
        self.counts: list[bytes] = [b""] * n
        self.has_mask = np.zeros(n, bool)
        self.mask_area, self.mask_box = np.zeros(n), np.full((n, 4), np.nan)
        self.keypoints: np.ndarray | None = None
        self.keypoint_box = np.full((n, 4), np.nan)
        self.fail(self.image_row < 0, UNKNOWN_IMAGE)
        self.fail(self.category_row < 0, UNKNOWN_CATEGORY)
        self.fail(~np.isfinite(self.score), BAD_SCORE)
        self.fail(self.box_state == _BAD, BAD_BOX)
        self.fail(self.box_given & ((self.box[:, 2] < 0) | (self.box[:, 3] < 0)), NEGATIVE_BOX)

    def fail(self, bad: np.ndarray, reason: str) -> None:
        self.reason[(self.reason == 0) & bad] = CODE[reason]

    @property
    def kept(self) -> np.ndarray:
        return self.reason == 0

    def branch(self) -> Branch | None:
        """loadRes' rule for area and bbox, as this span's first kept record decides it."""
        kept = np.flatnonzero(self.kept)
        if not len(kept):
            return None
        first = int(kept[0])
        return "box" if self.box_given[first] else "mask" if self.has_mask[first] else "keypoints"


_NONE, _GIVEN, _BAD = 0, 1, 2  # a record's box: none (missing, null or []), 4 numbers, other


def _checked_span(records: list, rules: _KindRules, truth: _Truth) -> _Span:
    span = _Span(records, truth)
    if rules.keypoints:
        _add_keypoints(span, records, truth)
    else:
        needed = span.kept & (~span.box_given | rules.masks)
        _add_masks(span, records, np.flatnonzero(needed), truth, rules.missing)
    return span


def _add_masks(
    span: _Span, records: list, rows: np.ndarray, truth: _Truth, missing: str | None
) -> None:
    """Decode the segmentations of ``rows`` into RLEs, their areas and boxes; a bad one fails
    its record, a missing one too when ``missing`` says why."""
    raws = [records[i].segmentation for i in rows.tolist()]
    image_rows = span.image_row[rows]
    heights, widths = truth.heights[image_rows], truth.widths[image_rows]
    counts, status = _geometry.segmentation_rles(raws, heights, widths)
    bad = np.zeros(len(span.reason), bool)
    for code in np.unique(status[status > 0]).tolist():
        bad[:] = False
        bad[rows[status == code]] = True
        span.fail(bad, REASONS[code])
    if missing is not None:
        bad[:] = False
        bad[rows[status == _geometry.ABSENT]] = True
        span.fail(bad, missing)
    good = np.flatnonzero(status == 0)
    strings = [counts[j] for j in good.tolist()]
    at = rows[good]
    span.mask_area[at], span.mask_box[at] = _geometry.areas_and_boxes(strings, heights[good])
    span.has_mask[at] = True
    for i, string in zip(at.tolist(), strings, strict=True):
        span.counts[i] = string


def _add_keypoints(span: _Span, records: list, truth: _Truth) -> None:
    lists = [r.keypoints for r in records]
    expected = truth.keypoint_lengths[np.maximum(span.category_row, 0)]
    if not len(truth.keypoint_lengths):
        expected = np.full(len(records), 3 * DEFAULT_KEYPOINTS, np.int64)
    span.keypoints, ok = _geometry.keypoint_matrix(lists, expected)
    span.fail(np.array([v is None for v in lists], bool), NO_KEYPOINTS)
    span.fail(~ok, BAD_KEYPOINTS)
    span.keypoint_box = _geometry.keypoint_boxes(span.keypoints)


def _ids(records: list, field: str) -> tuple[np.ndarray, np.ndarray]:
    """An id column as int64 (string ids mapped as the index maps them), and where an id is
    given at all (not missing, and no integer beyond int64)."""
    n = len(records)
    try:
        return np.fromiter(map(attrgetter(field), records), np.int64, n), np.ones(n, bool)
    except (TypeError, ValueError, OverflowError):
        pass
    values = list(map(attrgetter(field), records))
    given = np.fromiter(map(_is_id, values), bool, n)
    ids = (string_id(v) if isinstance(v, str) else v if ok else 0 for v, ok in zip(values, given))  # noqa: B905
    return np.fromiter(ids, np.int64, n), given


def _is_id(value: object) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and -(2**63) <= value < 2**63)


def _scores(records: list) -> np.ndarray:
    """The score column; NaN where a record has none (null)."""
    n = len(records)
    try:
        return np.fromiter(map(attrgetter("score"), records), np.float64, n)
    except TypeError:
        scores = map(attrgetter("score"), records)
        return np.fromiter((np.nan if s is None else s for s in scores), np.float64, n)


def _boxes(records: list) -> tuple[np.ndarray, np.ndarray]:
    """The given boxes ``(n, 4)`` (NaN where none) and each record's box state (none: missing,
    null or []; given: 4 finite numbers; bad: anything else)."""
    n = len(records)
    boxes = list(map(attrgetter("bbox"), records))
    try:
        sizes = np.fromiter(map(len, boxes), np.int64, n)
    except TypeError:  # null boxes
        sizes = np.fromiter((0 if b is None else len(b) for b in boxes), np.int64, n)
    four = sizes == 4
    if four.all():
        out = np.fromiter(itertools.chain.from_iterable(boxes), np.float64, 4 * n).reshape(n, 4)
    else:
        out = np.full((n, 4), np.nan)
        rows = np.flatnonzero(four)
        out[rows] = np.array([boxes[i] for i in rows.tolist()], np.float64).reshape(-1, 4)
    state = np.where(four, _GIVEN, np.where(sizes == 0, _NONE, _BAD))
    state[four & ~np.isfinite(out).all(1)] = _BAD
    return out, state


@dataclass(frozen=True)
class _Part:
    """The kept records of one span, as the final columns."""

    image_id: np.ndarray
    category_id: np.ndarray
    score: np.ndarray
    bbox: np.ndarray
    area: np.ndarray
    image_row: np.ndarray  # the records' images: the size of their RLEs
    counts: list[bytes] | None
    keypoints: np.ndarray | None


def _kept_part(span: _Span, branch: Branch | None, rules: _KindRules) -> _Part:
    """The kept records with loadRes' bbox and area (see the module's doc)."""
    k = span.kept
    box = np.where(
        span.box_given[:, None],
        span.box,
        np.where(span.has_mask[:, None], span.mask_box, span.keypoint_box),
    )[k]
    if branch == "keypoints":
        box = span.keypoint_box[k]
    area = box[:, 2] * box[:, 3]
    if branch == "mask":
        area = np.where(span.has_mask[k], span.mask_area[k], area)
    counts = None
    if rules.masks:
        counts = [c for c, keep in zip(span.counts, k.tolist(), strict=True) if keep]
    return _Part(
        image_id=span.image_id[k],
        category_id=span.category_id[k],
        score=span.score[k],
        bbox=box,
        area=area,
        image_row=span.image_row[k],
        counts=counts,
        keypoints=span.keypoints[k] if span.keypoints is not None else None,
    )


def _joined(
    parts: list[_Part], truth: _Truth, path: Path | None, kind: ResultKind, skipped: dict
) -> Detections:
    def column(name: str, empty: np.ndarray) -> np.ndarray:
        arrays = [getattr(p, name) for p in parts]
        return np.concatenate(arrays) if arrays else empty

    rows = column("image_row", np.zeros(0, np.int64))
    rles = None
    if all(p.counts is not None for p in parts) and _RULES[kind].masks:
        counts = [c for p in parts for c in p.counts or ()]
        lengths = np.fromiter(map(len, counts), np.int64, len(counts))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        rles = RleColumn(truth.heights[rows], truth.widths[rows], b"".join(counts), offsets)
    keypoints = None
    if _RULES[kind].keypoints:
        width = max([p.keypoints.shape[1] for p in parts if p.keypoints is not None], default=0)
        padded = [_padded(p.keypoints, width) for p in parts if p.keypoints is not None]
        keypoints = np.concatenate(padded) if padded else np.zeros((0, width))
    return Detections(
        path=path,
        kind=kind,
        image_id=column("image_id", np.zeros(0, np.int64)),
        category_id=column("category_id", np.zeros(0, np.int64)),
        score=column("score", np.zeros(0)),
        bbox=column("bbox", np.zeros((0, 4))),
        area=column("area", np.zeros(0)),
        rles=rles,
        keypoints=keypoints,
        skipped=skipped,
    )


def _padded(keypoints: np.ndarray, width: int) -> np.ndarray:
    pad = width - keypoints.shape[1]
    return np.pad(keypoints, ((0, 0), (0, pad)), constant_values=np.nan) if pad else keypoints
