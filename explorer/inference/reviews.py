"""What a person decided about suspected mistakes, kept in a small sidecar file of the user's work.

One JSON file per annotation file (``<work>/reviews/<hash of its real path>.json``, see
:func:`explorer.paths.work_dir`): a row of :mod:`explorer.inference.mistakes` is ``reviewed``
(looked at: not a mistake) or ``confirmed`` (a mistake to fix). The annotation file itself is
never written; :func:`confirmed_fixes` turns the confirmed rows into
:class:`explorer.coco.corrections.Fix` values for a corrected copy.

Decisions are tied to the version of the file they were made on (its real path, size and
modification time): a file replaced at the same path (a re-export) or a sidecar of another file
copied in its place must not relabel annotations nobody looked at. Decisions of another version
are kept in the sidecar but not applied, and :func:`read` says so in its ``note``. (Not the
index's fingerprint: that also names the index cache's format, whose changes must not drop
anyone's decisions.)

Every change is a load-modify-write under an exclusive ``flock`` on ``<sidecar>.lock``: two app
servers (processes) or two sessions of one (threads) never lose each other's decisions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from explorer.coco.corrections import Fix
from explorer.errors import ExplorerError
from explorer.inference.mistakes import MODELS
from explorer.paths import atomic_write_json, work_dir

Decision = Literal["reviewed", "confirmed"]
DECISIONS: tuple[Decision, ...] = ("reviewed", "confirmed")


@dataclass(frozen=True)
class Reviews:
    """The decisions that apply to the file as it is now, and (``note``, empty when there is
    nothing to say) why others recorded in its sidecar do not."""

    decisions: dict[str, Decision] = field(default_factory=dict)
    note: str = ""


def row_key(row) -> str:
    """A mistake row's identity across runs: its kind and annotation (or, for a missing object,
    its image, category and box), after its evidence when that is not the two models (a
    detector's row, ``detector NAME|wrong_label:42``: a detector's doubt about an annotation is
    not the models' doubt about it, and each is decided on its own)."""
    if int(row["annotation_id"]) >= 0:
        key = f"{row['kind']}:{int(row['annotation_id'])}"
    else:
        box = ",".join(f"{float(v):.1f}" for v in row["bbox"])
        key = f"missing:{int(row['image_id'])}:{int(row['category_id'])}:{box}"
    evidence = row.get("evidence", MODELS)
    return key if not isinstance(evidence, str) or evidence == MODELS else f"{evidence}|{key}"


def reviews_path(annotations: str | Path) -> Path:
    real = os.path.realpath(annotations)
    return work_dir("reviews") / f"{hashlib.sha1(real.encode()).hexdigest()[:16]}.json"


def file_version(annotations: str | Path) -> str:
    """The version of the annotation file decisions are tied to: a hash of its real path, size
    and modification time.

    Raises:
        ExplorerError: the file cannot be read.
    """
    real = os.path.realpath(annotations)
    try:
        st = os.stat(real)
    except OSError as e:
        raise ExplorerError(f"{annotations}: cannot read ({e.strerror})") from None
    return hashlib.sha1(f"{real}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:20]


def read(annotations: str | Path) -> Reviews:
    """The decisions made on this version of the annotation file (none when there is no
    sidecar, or it is damaged: a sidecar is never worth a crash), and a note on the others.

    Raises:
        ExplorerError: the annotation file cannot be read.
    """
    real, version = os.path.realpath(annotations), file_version(annotations)
    sidecar = reviews_path(annotations)
    doc = _sidecar(sidecar)
    if doc is None:
        return Reviews()
    if doc.get("annotations") != real:
        return Reviews(
            note=f"{sidecar}: holds the decisions of {doc.get('annotations')!r}, another file; "
            "none is applied here"
        )
    versions = _versions(doc, sidecar, annotations)
    others = sum(len(d) for v, d in versions.items() if v != version)
    note = (
        f"{others} decisions were made on another version of {annotations} (the file has "
        "changed since, or was replaced): they are not applied"
        if others
        else ""
    )
    return Reviews(versions.get(version, {}), note)


def load(annotations: str | Path) -> dict[str, Decision]:
    """The decisions that apply to this version of the annotation file (:func:`read`)."""
    return read(annotations).decisions


def decide(annotations: str | Path, key: str, decision: Decision | None) -> dict[str, Decision]:
    """Record (or with None, forget) one decision on the file as it is now; returns all of them.

    Raises:
        ExplorerError: the annotation file cannot be read, or the sidecar cannot be written
            (a folder in its place, no permission, a full disk).
    """
    return _change(annotations, key, lambda current: decision)


def toggle(annotations: str | Path, key: str, decision: Decision) -> dict[str, Decision]:
    """Record ``decision``, or forget it when it is the one recorded (a button pressed again),
    in one locked step; returns all of them. Raises as :func:`decide`."""
    return _change(annotations, key, lambda current: None if current == decision else decision)


def _change(annotations: str | Path, key: str, new) -> dict[str, Decision]:
    real, version = os.path.realpath(annotations), file_version(annotations)
    sidecar = reviews_path(annotations)
    with _locked(sidecar):
        doc = _sidecar(sidecar)
        if doc is None or doc.get("annotations") != real:
            doc = {}  # none yet, damaged, or another file's copied here: start this file's own
        versions = _versions(doc, sidecar, annotations)
        decisions = versions.setdefault(version, {})
        decision = new(decisions.get(key))
        if decision is None:
            decisions.pop(key, None)
        else:
            decisions[key] = decision
        atomic_write_json(sidecar, {"annotations": real, "versions": versions})
    return dict(decisions)


@contextlib.contextmanager
def _locked(sidecar: Path) -> Iterator[None]:
    """An exclusive lock on ``<sidecar>.lock`` for the block: across processes and threads
    (``flock`` locks belong to an open file, and each caller opens its own)."""
    lock = sidecar.with_name(sidecar.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as e:
        raise ExplorerError(f"{lock}: cannot lock the decisions file ({e.strerror})") from None
    try:
        if sys.platform != "win32":  # Windows has no flock: one process at a time there
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _sidecar(path: Path) -> dict[str, Any] | None:
    """The sidecar's JSON object, or None when there is none or it cannot be trusted (not
    JSON, not an object, nested too deeply, a folder in its place)."""
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def _versions(doc: dict[str, Any], sidecar: Path, annotations: str | Path) -> dict[str, dict]:
    """Decisions by file version, the valid ones only. A sidecar written before decisions had
    versions (``"decisions"`` alone) belongs to the file as it is now when the file has not
    changed since the sidecar was last written, else to no version."""
    versions = doc.get("versions")
    if not isinstance(versions, dict):
        legacy = _valid(doc.get("decisions"))
        if not legacy:
            return {}
        try:
            unchanged = os.stat(annotations).st_mtime_ns <= os.stat(sidecar).st_mtime_ns
        except OSError:
            unchanged = False
        return {file_version(annotations) if unchanged else "before-versions": legacy}
    return {str(v): _valid(d) for v, d in versions.items() if _valid(d)}


def _valid(decisions: object) -> dict[str, Decision]:
    if not isinstance(decisions, dict):
        return {}
    return {str(k): v for k, v in decisions.items() if isinstance(v, str) and v in DECISIONS}


def fix_of(row) -> Fix:
    """The change a confirmed row asks for: a new category, a new mask, or a new object."""
    kind = str(row["kind"])
    x, y, w, h = (float(v) for v in row["bbox"])
    image, category = int(row["image_id"]), int(row["category_id"])
    if kind == "wrong_label":
        return Fix("relabel", image, annotation_id=int(row["annotation_id"]), category_id=category)
    if kind == "bad_mask":
        rle = str(row["suggested_rle"])
        annotation = int(row["annotation_id"])
        return Fix("remask", image, annotation_id=annotation, category_id=category, rle=rle)
    rle = str(row["suggested_rle"] or "")
    return Fix("add", image, category_id=category, bbox=(x, y, w, h), rle=rle)


def confirmed_fixes(frame, decisions: dict[str, Decision]) -> list[Fix]:
    """The fixes of the rows of a mistakes table (a DataFrame) that were confirmed."""
    return [fix_of(r) for _, r in frame.iterrows() if decisions.get(row_key(r)) == "confirmed"]
