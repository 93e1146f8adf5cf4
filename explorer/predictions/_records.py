"""Records of a COCO results file, decoded span by span into typed msgspec Structs.

A results file is one JSON array of records. It is cut into spans of whole records
(``coco._annotations.locate_list_spans``); each span is decoded typed in one call, so no more than
one span's records exist as Python objects at a time. A span holding a record that does not fit
the schema (a string score, ``"bbox": "oops"``, a number where a record should be) is decoded
again record by record: the records that fit are kept, each other one is counted under the
reason of its first field that does not fit. ``NaN`` and ``Infinity``, which Python's ``json``
writes and msgspec refuses, are read with Python's ``json`` for that span only.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from types import GenericAlias

import msgspec

from explorer.coco._annotations import bracketed, locate_list_spans
from explorer.coco._records import FileBytes

# Why a record is skipped, each a short phrase (the key of ``Detections.skipped``).
NOT_AN_OBJECT = "not a JSON object"
UNKNOWN_IMAGE = "image_id missing or not in the ground truth"
UNKNOWN_CATEGORY = "category_id missing or not in the ground truth"
BAD_SCORE = "score missing or not a finite number"
BAD_BOX = "bbox not 4 finite numbers"
NEGATIVE_BOX = "bbox of negative width or height"
BAD_SEGMENTATION = "segmentation neither polygons nor an RLE"
UNKNOWN_SIZE = "segmentation on an image of unknown size"
RLE_SIZE = "RLE size not its image's height x width"
BAD_RLE = "malformed RLE"
BAD_POLYGON = "malformed polygon"
BAD_KEYPOINTS = "keypoints not 3 finite numbers per keypoint of its category"
NO_BOX_OR_MASK = "no bbox or segmentation"
NO_SEGMENTATION = "no segmentation"
NO_KEYPOINTS = "no keypoints"
# Reasons by code, as span columns hold them (0: kept); a record gets the first that applies.
REASONS = (
    "",
    NOT_AN_OBJECT,
    UNKNOWN_IMAGE,
    UNKNOWN_CATEGORY,
    BAD_SCORE,
    BAD_BOX,
    NEGATIVE_BOX,
    NO_BOX_OR_MASK,
    NO_SEGMENTATION,
    NO_KEYPOINTS,
    BAD_SEGMENTATION,
    UNKNOWN_SIZE,
    RLE_SIZE,
    BAD_RLE,
    BAD_POLYGON,
    BAD_KEYPOINTS,
)
CODE = {reason: code for code, reason in enumerate(REASONS)}

RECORDS_PER_CHUNK = 65536  # records decoded at once when the file could not be cut into spans
SPAN_BYTES = 8 << 20  # about 100k bbox records: a few tens of MB of Python objects at a time

# How each field a kind reads is typed, what a record that leaves it out has, and why a record
# whose value does not fit is skipped. The segmentation stays raw JSON text, decoded only for
# the records that need a mask (see ``_geometry``).
_NO_SEGMENTATION = msgspec.Raw(b"null")
FIELDS: dict[str, tuple[object, object, str]] = {
    "image_id": (int | str | None, None, UNKNOWN_IMAGE),
    "category_id": (int | str | None, None, UNKNOWN_CATEGORY),
    "score": (float | None, None, BAD_SCORE),
    "bbox": (list[float] | None, None, BAD_BOX),
    "segmentation": (msgspec.Raw, _NO_SEGMENTATION, BAD_SEGMENTATION),
    "keypoints": (list[float] | None, None, BAD_KEYPOINTS),
}


def record_type(fields: tuple[str, ...]) -> type[msgspec.Struct]:
    """The typed record of a kind that reads ``fields`` (the others are skipped unread)."""
    entries = [(name, FIELDS[name][0], FIELDS[name][1]) for name in fields]
    return msgspec.defstruct("ResultRecord", entries, kw_only=True, gc=False)


class SpanError(Exception):
    """A span the byte search cut is not a run of whole records: decode the file whole."""


@dataclass
class Chunk:
    """One span's typed records, and the records it skipped, by reason."""

    records: list
    skipped: Counter


class ChunkDecoder:
    """Decodes spans (JSON arrays of records, as bytes) into :class:`Chunk` s of ``record``."""

    def __init__(self, record: type[msgspec.Struct]) -> None:
        self.record = record
        self.typed = msgspec.json.Decoder(GenericAlias(list, (record,)))
        self.fields = [(f, FIELDS[f]) for f in record.__struct_fields__]

    def __call__(self, buffer: memoryview | bytes | list) -> Chunk:
        if isinstance(buffer, list):  # records Python's json already decoded
            return self.loose(buffer)
        try:
            return Chunk(self.typed.decode(buffer), Counter())
        except msgspec.ValidationError:
            pass
        except msgspec.DecodeError:
            return self.loose(python_json(buffer))
        return self.loose(span_objects(buffer))

    def loose(self, objects: Iterable) -> Chunk:
        """The records that fit, one at a time; the others counted by their first bad field."""
        records: list = []
        skipped: Counter = Counter()
        for obj in objects:
            if not isinstance(obj, dict):
                skipped[NOT_AN_OBJECT] += 1
                continue
            values, reason = {}, None
            for name, (typ, missing, bad) in self.fields:
                try:
                    values[name] = _field(obj, name, typ, missing)
                except (msgspec.ValidationError, TypeError, ValueError):
                    reason = bad
                    break
            if reason is None:
                records.append(self.record(**values))
            else:
                skipped[reason] += 1
        return Chunk(records, skipped)


def _field(obj: dict, name: str, typ: object, missing: object) -> object:
    value = obj.get(name, missing)
    if typ is msgspec.Raw:
        return value if value is missing else msgspec.Raw(msgspec.json.encode(value))
    if isinstance(value, float) and name.endswith("_id") and value.is_integer():
        value = int(value)  # 42.0 is the id 42 (to pycocotools too: 42.0 == 42 as a dict key)
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    return msgspec.convert(value, typ)


_RAWS = msgspec.json.Decoder(list[msgspec.Raw])
_ANY = msgspec.json.Decoder()


def span_objects(buffer: memoryview | bytes) -> Iterator[object]:
    """The records of a span as Python objects, one at a time."""
    return map(_any, _RAWS.decode(buffer))


def _any(raw: msgspec.Raw) -> object:
    try:
        return _ANY.decode(raw)
    except msgspec.ValidationError:  # a number beyond float64 (1e400), which Python reads as inf
        return json.loads(bytes(raw))


def python_json(buffer: memoryview | bytes) -> list:
    """A span with ``NaN`` or ``Infinity`` (Python's ``json`` writes them), decoded by Python's
    ``json``. Raises SpanError when it is not a JSON array at all (a cut inside a record)."""
    try:
        objects = json.loads(bytes(buffer))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise SpanError("the span is not a JSON array of records") from None
    if not isinstance(objects, list):
        raise SpanError("the span is not a JSON array of records")
    return objects


def file_chunks(data: FileBytes) -> Iterator[memoryview] | None:
    """The spans of records of a results file, each as the text of a JSON array decoded where
    it lies (valid only until the next is asked for); None when the byte search cannot cut
    the file (then use :func:`whole_file_chunks`)."""
    spans = locate_list_spans(data, SPAN_BYTES)
    if spans is None:
        return None
    return _bracketed_spans(data, spans)


def _bracketed_spans(
    data: FileBytes, spans: list[tuple[int, int]]
) -> Generator[memoryview, None, None]:
    for start, stop in spans:
        with bracketed(data, start, stop) as buffer:
            yield buffer


def whole_file_chunks(data: FileBytes) -> Generator[bytes | list, None, None]:
    """The records of a file that is one JSON array, decoded whole (records left raw), in
    chunks of :data:`RECORDS_PER_CHUNK`. Raises ``msgspec.DecodeError`` when it is not JSON
    even to Python's ``json`` (which reads ``NaN``), ``msgspec.ValidationError`` when it is
    JSON but not an array."""
    try:
        raws = _RAWS.decode(data)
    except msgspec.ValidationError:
        raise
    except msgspec.DecodeError as e:
        try:
            objects = json.loads(bytes(data))
        except (ValueError, RecursionError):
            raise e from None
        if not isinstance(objects, list):
            raise msgspec.ValidationError("not a JSON array") from None
        for i in range(0, len(objects), RECORDS_PER_CHUNK):
            yield objects[i : i + RECORDS_PER_CHUNK]
        return
    for i in range(0, len(raws), RECORDS_PER_CHUNK):
        yield b"[" + b",".join(raws[i : i + RECORDS_PER_CHUNK]) + b"]"
