"""The one image loader: safe paths, any PIL mode to RGB, orientation matching the annotations."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from explorer.errors import ImageError, UnsafePathError


def resolve_image_path(images_dir: str | os.PathLike, file_name: str) -> Path:
    """Join ``file_name`` (from a data file) to ``images_dir``, refusing any escape.

    Raises:
        UnsafePathError: the name is absolute, holds a NUL byte, or leaves the folder (``..``).
    """
    root = os.path.abspath(images_dir)
    if (
        not file_name
        or "\x00" in file_name
        or os.path.isabs(file_name)
        or file_name.startswith("\\")
    ):
        raise UnsafePathError(f"{file_name!r}: not a relative file name inside {images_dir}")
    full = os.path.normpath(os.path.join(root, file_name))
    if os.path.commonpath([root, full]) != root or full == root:
        raise UnsafePathError(f"{file_name!r}: leaves the image folder {images_dir}")
    return Path(full)


def load_rgb(path: str | os.PathLike, expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """Load an image as ``(height, width, 3)`` uint8 RGB.

    Grayscale, palette, CMYK, 16-bit and RGBA images are converted (alpha is dropped). When
    ``expected_size`` (width, height) is given and the stored pixels do not have it but their
    EXIF-rotated version does, the rotated version is returned: COCO's boxes and polygons refer
    to the image as annotated.

    Raises:
        ImageError: the file is missing, not an image, truncated or corrupt, or its size
            differs from ``expected_size``.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            if expected_size and im.size != tuple(expected_size):
                rotated = ImageOps.exif_transpose(im)
                if rotated.size == tuple(expected_size):
                    im = rotated
                else:
                    raise ImageError(
                        f"{path}: image is {im.size[0]}x{im.size[1]} but the "
                        f"annotations say {expected_size[0]}x{expected_size[1]}"
                    )
            if im.mode == "I;16" or im.mode == "I":
                im = Image.fromarray(
                    (np.asarray(im, np.float32) / 256).clip(0, 255).astype(np.uint8)
                )
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise ImageError(f"{path}: image file not found") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image file") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"{path}: corrupt or truncated image ({e})") from None


CROP_CONTEXT = 0.1  # a crop is the box grown by 10% of its size on each side


def crop_box(
    box, width: int, height: int, context: float = CROP_CONTEXT
) -> tuple[int, int, int, int]:
    """A COCO box (x, y, w, h) grown by ``context`` of its size on each side and clipped to the
    image, as integer (x0, y0, x1, y1) that hold at least one pixel."""
    x, y, w, h = box
    x0, y0 = max(0, int(np.floor(x - context * w))), max(0, int(np.floor(y - context * h)))
    x1 = min(width, int(np.ceil(x + w + context * w)))
    y1 = min(height, int(np.ceil(y + h + context * h)))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)
