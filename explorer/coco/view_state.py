"""A view of a dataset (Browse's filters, open image and page) and its query string, beside the
dataset's ``ds`` key and the open predictions' ``preds`` keys (the frame every page keeps):
parsing is forgiving (a bad value is dropped, not fatal).

``?image_id=397133&cats=1,18&match=all&crowd=no&inst=2-10&size=large&q=0001&page=3&ids=1,2``

and, where predictions are open, what Browse draws and filters by of them:
``&pred=<key>&score=0.3&fn=18&fp=background&sort=errors`` (the file drawn, the score threshold,
only images where an object of category 18 was missed, only images with a background false
positive, the images with the most errors first).

Pure encode and decode: the app reads and writes the browser's address
(:mod:`explorer.app.url`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

from explorer.coco.filters import ImageFilter
from explorer.types import ERROR_CAUSES, SIZE_RANGES, Crowd, ErrorCause, MatchMode, SizeClass

# ASCII digits only: int() also accepts '١٢' (Arabic-Indic digits), '1_000' and ' 12\n', and
# str.isdigit() accepts '²', which int() then refuses with a ValueError.
_DIGITS = re.compile(r"[0-9]{1,19}")
INT64_MAX = 2**63 - 1

# the values a query may give, by how it writes them
_CROWDS: dict[str | None, Crowd] = {"only": "only", "none": "none"}
_SIZES: dict[str | None, SizeClass] = {size: size for size in SIZE_RANGES}
_CAUSES: dict[str | None, ErrorCause] = {cause: cause for cause in ERROR_CAUSES}
_KEY = re.compile(r"[0-9a-f]{12}")  # a predictions file's key (explorer.predictions.sources)
_SCORE = re.compile(r"[0-9]{1,6}(\.[0-9]{1,4})?")

ImageOrder = Literal["file", "errors"]
DEFAULT_MIN_SCORE = 0.5  # the Evaluate page's threshold too, until a user moves either


def parse_id(value: str | None) -> int | None:
    """A non-negative integer written in ASCII digits that fits an int64 column, else None."""
    if value is None or not _DIGITS.fullmatch(value):
        return None
    n = int(value)
    return n if n <= INT64_MAX else None


def _ints(value: str | None) -> tuple[int, ...]:
    ids = (parse_id(v.strip()) for v in (value or "").split(","))
    return tuple(i for i in ids if i is not None)


@dataclass(frozen=True)
class BrowseState:
    """Everything the Browse page shows, but the dataset."""

    image_id: int | None = None
    categories: tuple[int, ...] = ()
    supercategories: tuple[str, ...] = ()
    match: MatchMode = "any"
    crowd: Crowd = "any"
    instances: tuple[int, int] | None = None
    size: SizeClass | Literal["any"] = "any"
    query: str = ""
    page: int = 1
    image_ids: tuple[int, ...] = ()  # only these images (chosen on the Map)
    # what is drawn of the open predictions, and the filters on their errors (at IoU 0.5)
    predictions: str = ""  # the key of the file drawn ("": the first open)
    min_score: float = DEFAULT_MIN_SCORE  # detections scoring less are not drawn nor counted
    missed: int | None = None  # only images where an object of this category was missed
    false_positive: ErrorCause | None = None  # only images with a false positive of this cause
    order: ImageOrder = "file"  # "errors": the images with the most FP + FN first

    def image_filter(self) -> ImageFilter:
        return ImageFilter(
            categories=self.categories,
            supercategories=self.supercategories,
            match=self.match,
            crowd={"only": True, "none": False}.get(self.crowd),
            instances=self.instances,
            area=None if self.size == "any" else SIZE_RANGES[self.size],
            query=self.query,
            image_ids=self.image_ids,
        )

    def with_(self, **changes) -> BrowseState:
        return replace(self, **changes)


def browse_from_query(q: dict[str, str]) -> BrowseState:
    """Parse query parameters (values are strings, the last one wins)."""
    inst = (q.get("inst") or "").split("-")
    lo, hi = (parse_id(inst[0]), parse_id(inst[1])) if len(inst) == 2 else (None, None)
    return BrowseState(
        image_id=parse_id(q.get("image_id")),
        categories=_ints(q.get("cats")),
        supercategories=tuple(s for s in (q.get("supers") or "").split(",") if s),
        match="all" if q.get("match") == "all" else "any",
        crowd=_CROWDS.get(q.get("crowd"), "any"),
        instances=(lo, hi) if lo is not None and hi is not None and lo <= hi else None,
        size=_SIZES.get(q.get("size"), "any"),
        query=(q.get("q") or "")[:200],
        page=max(1, parse_id(q.get("page")) or 1),
        image_ids=tuple(dict.fromkeys(_ints(q.get("ids")))),
        predictions=q.get("pred", "") if _KEY.fullmatch(q.get("pred") or "") else "",
        min_score=_score(q.get("score")),
        missed=parse_id(q.get("fn")),
        false_positive=_CAUSES.get(q.get("fp")),
        order="errors" if q.get("sort") == "errors" else "file",
    )


def _score(value: str | None) -> float:
    """A score threshold written as a plain decimal (the default when it is not one)."""
    return float(value) if value and _SCORE.fullmatch(value) else DEFAULT_MIN_SCORE


def browse_to_query(s: BrowseState) -> dict[str, str]:
    """The canonical query string of a state (defaults left out, so URLs stay short)."""
    q = {
        "image_id": "" if s.image_id is None else str(s.image_id),
        "cats": ",".join(map(str, s.categories)),
        "supers": ",".join(s.supercategories),
        "match": "all" if s.match == "all" else "",
        "crowd": "" if s.crowd == "any" else s.crowd,
        "inst": f"{s.instances[0]}-{s.instances[1]}" if s.instances else "",
        "size": "" if s.size == "any" else s.size,
        "q": s.query,
        "page": "" if s.page == 1 else str(s.page),
        "ids": ",".join(map(str, s.image_ids)),
        "pred": s.predictions,
        "score": "" if s.min_score == DEFAULT_MIN_SCORE else f"{s.min_score:g}",
        "fn": "" if s.missed is None else str(s.missed),
        "fp": s.false_positive or "",
        "sort": "errors" if s.order == "errors" else "",
    }
    return {k: v for k, v in q.items() if v}


DATASET_PARAM = "ds"  # the dataset's key (explorer.coco.sources.source_key), never a path
# the open predictions files' keys, comma-separated (explorer.predictions.sources), never paths
PREDICTIONS_PARAM = "preds"
FRAME_PARAMS = (DATASET_PARAM, PREDICTIONS_PARAM)  # what every page's address keeps


def view_params(q: dict[str, str]) -> dict[str, str]:
    """A query string's view part (everything but the dataset's and the predictions' keys)."""
    return {k: v for k, v in q.items() if k not in FRAME_PARAMS}


def frame_params(q: dict[str, str]) -> dict[str, str]:
    """A query string's frame part: the dataset's and the predictions' keys, in that order."""
    return {k: q[k] for k in FRAME_PARAMS if q.get(k)}


def with_frame(q: dict[str, str], frame: dict[str, str]) -> dict[str, str]:
    """A view's query string with the frame's keys in front."""
    return {**frame_params(frame), **view_params(q)}
