"""One exception family for everything a user can cause.

The CLI turns an :class:`ExplorerError` into exit status 2 and one line; pages turn it into
``st.error``. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ExplorerError(Exception):
    """Base class of errors caused by user input (files, paths, parameters)."""


class DatasetError(ExplorerError):
    """A COCO annotation file is missing, unreadable or not COCO."""


class ImageError(ExplorerError):
    """An image file is missing, corrupt or in an unsupported format."""


class UnsafePathError(ExplorerError):
    """A path taken from a data file tries to leave its folder."""


class SegmentationError(ExplorerError):
    """One annotation's segmentation cannot be decoded (bad polygon, RLE of the wrong size, ...)."""
