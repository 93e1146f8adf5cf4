"""Parse a COCO instances JSON into columnar arrays (the cold path of the index).

Two passes keep peak memory low: the top level is decoded with every record left as raw JSON
(zero-copy views into the file's bytes), then records are decoded typed in chunks, turned into
numpy columns and dropped. Segmentations are never decoded here: their raw JSON text is streamed
into one blob file and addressed by (offset, length).
"""

from __future__ import annotations

import ctypes
import itertools
import os
import pickle
import threading
from operator import attrgetter
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import msgspec
import numpy as np

from explorer.coco._schema import Annotation, Category, Image, RleHead, TopLevel
from explorer.errors import DatasetError

CHUNK = 65536
SEG_POLYGON, SEG_RLE, SEG_RLE_UNCOMPRESSED = 0, 1, 2
# Polygons this short are parsed at index time to catch ones with fewer than 3 points; longer
# ones cannot be that degenerate and are checked only when decoded.
_SHORT_SEGMENTATION = 64


class Problems:
    """Bad records found while parsing: grouped by check, with a few examples each."""

    def __init__(self) -> None:
        self.items: dict[str, dict] = {}

    def add(self, check: str, message: str, example: object, severity: str = "error") -> None:
        item = self.items.setdefault(check, {"check": check, "severity": severity, "count": 0,
                                             "message": message, "examples": []})
        item["count"] += 1
        if len(item["examples"]) < 10:
            item["examples"].append(example)


def read_top_level(path: Path) -> tuple[bytes, TopLevel]:
    """Read the file and decode its top level, records left raw. Raises DatasetError.

    The file is read, not memory-mapped: a writer truncating it meanwhile must give a clean
    error, not SIGBUS.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a folder, not an annotation file") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e.strerror})") from None
    if not data:
        raise DatasetError(f"{path}: empty file")
    try:
        top = msgspec.json.decode(data, type=TopLevel)
    except msgspec.ValidationError as e:  # a subclass of DecodeError: catch it first
        raise DatasetError(f"{path}: not a COCO instances file ({e})") from None
    except msgspec.DecodeError as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from None
    if top.images is None:
        raise DatasetError(f"{path}: not a COCO instances file (no 'images' list)")
    if top.categories is None:
        raise DatasetError(f"{path}: not a COCO instances file (no 'categories' list)")
    return data, top


def _record_id(raw: msgspec.Raw) -> object:
    try:
        obj = msgspec.json.decode(raw)
        return obj.get("id", "?") if isinstance(obj, dict) else "?"
    except msgspec.DecodeError:
        return "?"


def typed_chunks(raws: list, typ: type, what: str, problems: Problems,
                 as_array: Callable[[list], bytes] | None = None) -> Iterator[tuple]:
    """Decode raw records in chunks; a chunk that fails is redone one record at a time.

    Yields ``(start, items, buffer, kept)``: ``items`` decoded from ``buffer`` (a JSON array of
    the chunk's records, made by ``as_array``) when ``kept`` is None, else decoded one by one
    from ``raws``, ``kept`` being the indices (into ``raws``) of the records that fit the schema.
    """
    as_array = as_array or _json_array
    chunk_decoder = msgspec.json.Decoder(list[typ])
    one_decoder = msgspec.json.Decoder(typ)
    for start in range(0, len(raws), CHUNK):
        part = raws[start:start + CHUNK]
        buffer = as_array(part)
        try:
            yield start, chunk_decoder.decode(buffer), buffer, None
        except msgspec.ValidationError:
            good, kept = [], []
            for i, raw in enumerate(part, start):
                try:
                    good.append(one_decoder.decode(raw))
                    kept.append(i)
                except msgspec.ValidationError as e:
                    problems.add(f"bad_{what}_record", f"{what} records that do not fit the COCO "
                                 f"schema (skipped)", {"index": i, "id": _record_id(raw),
                                                       "error": str(e)})
            yield start, good, None, np.array(kept, dtype=np.int64)


def typed_records(raws: list, typ: type, what: str, problems: Problems) -> list:
    """All records that fit ``typ``, decoded."""
    return [x for _, items, _, _ in typed_chunks(raws, typ, what, problems) for x in items]


def _json_array(raws: list) -> bytes:
    """``[r0,r1,...]`` in one copy (``b"[" + b",".join(...) + b"]"`` would copy twice more)."""
    pieces = [b","] * (2 * len(raws) + 1)
    pieces[0], pieces[-1] = b"[", b"]"
    pieces[1::2] = raws
    return b"".join(pieces)


def _column(items: list, field: str, dtype) -> np.ndarray:
    return np.fromiter(map(attrgetter(field), items), dtype, len(items))


def parse_images(raws: list, problems: Problems) -> dict[str, np.ndarray]:
    items = typed_records(raws, Image, "image", problems)
    ids = _column(items, "id", np.int64)
    width = _column(items, "width", np.int64)
    height = _column(items, "height", np.int64)
    keep = (width > 0) & (height > 0)
    for i in np.flatnonzero(~keep)[:10]:
        problems.add("bad_image_size", "images whose width or height is not positive (skipped)",
                     int(ids[i]))
    if (~keep).sum() > 10:
        problems.items["bad_image_size"]["count"] = int((~keep).sum())
    _, first = np.unique(ids, return_index=True)
    unique = np.zeros(len(ids), bool)
    unique[first] = True
    for i in np.flatnonzero(~unique)[:10]:
        problems.add("duplicate_image_id", "images whose id repeats an earlier one (skipped)",
                     int(ids[i]))
    if (~unique).sum() > 10:
        problems.items["duplicate_image_id"]["count"] = int((~unique).sum())
    keep &= unique
    names = [it.file_name for it, k in zip(items, keep) if k]
    return {"id": ids[keep], "width": width[keep].astype(np.int32),
            "height": height[keep].astype(np.int32),
            "file_name": np.array(names, dtype=str) if names else np.array([], dtype="<U1")}


def parse_categories(raws: list, problems: Problems) -> list[dict]:
    cats, seen = [], set()
    for c in typed_records(raws, Category, "category", problems):
        if c.id in seen:
            problems.add("duplicate_category_id", "categories whose id repeats an earlier one "
                         "(skipped)", c.id)
            continue
        seen.add(c.id)
        cats.append({"id": c.id, "name": c.name, "supercategory": c.supercategory})
    return cats


def _address(obj) -> int:
    """Address of the bytes of a buffer-protocol object (one call; slow per object)."""
    return np.frombuffer(obj, np.uint8).ctypes.data if len(obj) else 0


# msgspec.Raw is {PyObject_HEAD; PyObject *base; char *buf; Py_ssize_t len}: reading ``buf``
# gives a Raw's address in the buffer it views, 10x faster than the buffer protocol. The layout
# is probed once (``raw_layout_ok``); if it ever differs, segmentations are copied instead.
_RAW_BUF_OFFSET = 24


def _raw_addresses(raws: list) -> np.ndarray:
    from_address = ctypes.c_void_p.from_address
    return np.fromiter((from_address(id(r) + _RAW_BUF_OFFSET).value or 0 for r in raws),
                       np.int64, len(raws))


def raw_layout_ok() -> bool:
    buf = b'[{"a":[1,2]},{"a":{"b":3}}]'
    raws = [x["a"] for x in msgspec.json.decode(buf, type=list[dict[str, msgspec.Raw]])]
    offsets = _raw_addresses(raws) - _address(buf)
    return all(buf[o:o + len(r)] == bytes(r) for o, r in zip(offsets.tolist(), raws))


def parse_annotations(raws: list, data: bytes, problems: Problems,
                      seg_out: BinaryIO | None = None) -> dict[str, np.ndarray]:
    """Decode annotation records (raw views into ``data``) into columns, in file order.

    Returns ``id``, ``image_id``, ``category_id``, ``iscrowd``, ``area``, ``bbox`` and where each
    raw segmentation lies: ``seg_offset``/``seg_length`` into ``data`` itself, or, when
    ``seg_out`` is given, into the blob streamed to it; ``seg_first`` is its first byte.
    Records that do not fit the schema are skipped and reported.
    """
    cols: dict[str, list[np.ndarray]] = {k: [] for k in (
        "id", "image_id", "category_id", "iscrowd", "area", "bbox", "seg_offset", "seg_length",
        "seg_first")}
    data_base = _address(data)
    data_np = np.frombuffer(data, np.uint8)
    view = memoryview(data)

    def file_region(part: list) -> bytes:
        """The chunk's records as they stand in the file (commas included), in brackets."""
        first, last = _address(part[0]) - data_base, _address(part[-1]) - data_base + len(part[-1])
        return b"".join((b"[", view[first:last], b"]"))

    written = 0
    for start, chunk, buffer, kept in typed_chunks(raws, Annotation, "annotation", problems,
                                                   None if seg_out else file_region):
        n = len(chunk)
        for name, dtype in (("id", np.int64), ("image_id", np.int64), ("category_id", np.int64),
                            ("iscrowd", np.int64), ("area", np.float64)):
            cols[name].append(_column(chunk, name, dtype))
        cols["bbox"].append(np.fromiter(itertools.chain.from_iterable(
            map(attrgetter("bbox"), chunk)), np.float64, 4 * n).reshape(n, 4))
        segs = list(map(attrgetter("segmentation"), chunk))
        lengths = np.fromiter(map(len, segs), np.int64, n)
        cols["seg_length"].append(lengths)
        if seg_out is not None:
            blob = b"".join(segs)
            offsets = np.cumsum(lengths) - lengths
            cols["seg_first"].append(np.frombuffer(blob, np.uint8)[offsets] if n else lengths[:0])
            cols["seg_offset"].append(written + offsets)
            seg_out.write(blob)
            written += len(blob)
            continue
        if kept is not None:  # decoded one by one straight from views into ``data``
            offsets = _raw_addresses(segs) - data_base
        else:  # decoded from ``buffer``, a copy of the file from the chunk's first record on
            offsets = _raw_addresses(segs) - _address(buffer) - 1 + _address(raws[start]) - data_base
        for i in {0, n - 1} if n else ():  # cheap proof that the offsets address the file
            if data[offsets[i]:offsets[i] + lengths[i]] != bytes(segs[i]):
                raise RuntimeError("segmentation offsets do not address the annotation file")
        cols["seg_offset"].append(offsets)
        cols["seg_first"].append(data_np[offsets])
    out = {k: (np.concatenate(v) if v else np.zeros((0, 4) if k == "bbox" else 0,
                                                    np.uint8 if k == "seg_first" else np.int64))
           for k, v in cols.items()}
    return out


def check_segmentations(raw_of: Callable[[int], bytes], rows: np.ndarray, kind: np.ndarray,
                        heights: np.ndarray, widths: np.ndarray, ids: np.ndarray,
                        lengths: np.ndarray, problems: Problems) -> np.ndarray:
    """Return a keep-mask over ``rows``; set ``kind`` for RLEs. Cheap checks only.

    Every RLE is checked (its size must equal its image's); polygons are parsed only when
    short enough to possibly have fewer than 3 points.
    """
    keep = np.ones(len(rows), bool)
    rle = msgspec.json.Decoder(RleHead)
    for i in np.flatnonzero(kind == 255):
        keep[i] = False
        problems.add("bad_segmentation", "annotations whose segmentation is neither a polygon "
                     "list nor an RLE (skipped)", int(ids[i]))
    for i in np.flatnonzero(kind == SEG_RLE):
        try:
            head = rle.decode(raw_of(int(rows[i])))
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            keep[i] = False
            problems.add("bad_rle", "annotations whose RLE is malformed (skipped)",
                         {"id": int(ids[i]), "error": str(e)})
            continue
        if tuple(head.size) != (int(heights[i]), int(widths[i])):
            keep[i] = False
            problems.add("rle_size_mismatch", "annotations whose RLE size differs from their "
                         "image's height x width (skipped)",
                         {"id": int(ids[i]), "rle_size": list(head.size),
                          "image_size": [int(heights[i]), int(widths[i])]})
        elif bytes(head.counts)[:1] == b"[":
            kind[i] = SEG_RLE_UNCOMPRESSED
    for i in np.flatnonzero((kind == SEG_POLYGON) & (lengths <= _SHORT_SEGMENTATION)):
        try:
            parts = msgspec.json.decode(raw_of(int(rows[i])))
        except msgspec.DecodeError:
            parts = None
        if not polygon_parts_valid(parts):
            keep[i] = False
            problems.add("bad_polygon", "annotations whose polygon has fewer than 3 points "
                         "(skipped)", int(ids[i]))
    return keep


def polygon_parts_valid(parts: object) -> bool:
    """True when ``parts`` is a list with at least one polygon of 3+ points (6+ numbers)."""
    return isinstance(parts, list) and any(
        isinstance(p, list) and len(p) >= 6 and all(isinstance(v, (int, float)) for v in p)
        for p in parts)


def parse_annotations_in_two(raws: list, data, problems: Problems) -> dict[str, np.ndarray]:
    """:func:`parse_annotations` with the second half of the records in a forked process.

    Decoding is CPU-bound and holds the GIL, so a second core needs a second process; fork
    shares ``data`` and ``raws`` without copying. Used only where fork is safe: a process with a
    single thread (the CLI, not the Streamlit server), and only for files big enough to gain.
    """
    half = -(-len(raws) // (2 * CHUNK)) * CHUNK
    if (len(raws) < 4 * CHUNK or not hasattr(os, "fork") or threading.active_count() > 1
            or (os.cpu_count() or 1) < 2):
        return parse_annotations(raws, data, problems)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: parse the second half, send it back pickled, exit
        os.close(read_end)
        try:
            child_problems = Problems()
            result = ("ok", parse_annotations(raws[half:], data, child_problems), child_problems.items)
        except BaseException as e:  # noqa: BLE001 - reported to the parent, never raised here
            result = ("error", repr(e), None)
        with os.fdopen(write_end, "wb") as out:
            pickle.dump(result, out, protocol=pickle.HIGHEST_PROTOCOL)
        os._exit(0)
    os.close(write_end)
    try:
        first = parse_annotations(raws[:half], data, problems)
    finally:
        with os.fdopen(read_end, "rb") as inp:
            status, second, child_items = pickle.load(inp)
        os.waitpid(pid, 0)
    if status != "ok":
        raise RuntimeError(f"annotation parser process failed: {second}")
    for check, item in child_items.items():
        for example in item["examples"]:
            if isinstance(example, dict) and "index" in example:
                example["index"] += half
        mine = problems.items.setdefault(check, {**item, "count": 0, "examples": []})
        mine["count"] += item["count"]
        mine["examples"] = (mine["examples"] + item["examples"])[:10]
    return {k: np.concatenate([first[k], second[k]]) for k in first}
