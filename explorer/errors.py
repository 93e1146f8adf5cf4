"""One exception family for everything a user can cause.

The CLI turns an :class:`ExplorerError` into exit status 2 and one line; pages turn it into
``st.error``. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import os


class ExplorerError(Exception):
    """Base class of errors caused by user input (files, paths, parameters)."""


class DatasetError(ExplorerError):
    """A COCO annotation file is missing, unreadable or not COCO."""


class PredictionsError(DatasetError):
    """A COCO results file (a model's detections) is missing, unreadable or not a list of
    results. Bad records inside a good file are skipped and counted, never raised."""


class ImageError(ExplorerError):
    """An image file is missing, corrupt or in an unsupported format."""


class UnsafePathError(ExplorerError):
    """A path taken from a data file tries to leave its folder."""


class SegmentationError(ExplorerError):
    """One annotation's segmentation cannot be decoded (bad polygon, RLE of the wrong size, ...)."""


class DownloadError(ExplorerError):
    """A download failed for good: the host cannot be reached, answers an error after every
    retry, or sends a corrupt file."""


class StorageError(ExplorerError):
    """A folder cannot be written: the disk is full, over its quota, or read-only."""


class WeightsError(ExplorerError):
    """Weights are absent, cannot be downloaded, or do not fit the architecture."""


class Cancelled(ExplorerError):
    """The user stopped the work (a Stop button, a cancel flag, Ctrl-C); what was finished is
    kept (stored predictions, downloaded files)."""


class Stopped(Cancelled):
    """A training run stopped on request: resumable from its ``last.pt``."""


# why a write failed -> what the user is told; anything else is a bug and keeps its traceback
_STORAGE_ERRNOS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the folder is on a read-only file system",
}


def storage_error(folder: object, error: BaseException | None) -> StorageError | None:
    """The :class:`StorageError` naming ``folder`` when ``error`` is a full disk (or quota, or
    read-only file system); None for any other error."""
    if not isinstance(error, OSError) or error.errno not in _STORAGE_ERRNOS:
        return None
    reason = error.strerror or os.strerror(error.errno)
    return StorageError(f"{folder}: {_STORAGE_ERRNOS[error.errno]} ({reason})")
