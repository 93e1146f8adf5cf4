"""The one image loader: safe paths, any PIL mode to RGB, orientation matching the annotations."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from explorer.errors import ImageError, UnsafePathError
from explorer.paths import NotARegularFile, open_regular
from explorer.types import MAX_IMAGE_PIXELS

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def resolve_image_path(images_dir: str | os.PathLike, file_name: str) -> Path:
    """Join ``file_name`` (from a data file) to ``images_dir``, refusing any escape.

    A symbolic link inside the folder that points outside it is an escape too: the path is
    resolved and must stay under the folder's own resolved path.

    Raises:
        UnsafePathError: the name is absolute, holds a NUL byte, leaves the folder (``..``), or
            is a link to a file outside it.
    """
    root = os.path.abspath(images_dir)
    name = file_name.replace("\\", "/")  # Windows exports (labelme, VIA) write images\x.jpg
    if not name or "\x00" in name or os.path.isabs(name) or _WINDOWS_DRIVE.match(name):
        raise UnsafePathError(f"{file_name!r}: not a relative file name inside {images_dir}")
    full = os.path.normpath(os.path.join(root, name))
    if os.path.commonpath([root, full]) != root or full == root:
        raise UnsafePathError(f"{file_name!r}: leaves the image folder {images_dir}")
    real_root, real = os.path.realpath(root), os.path.realpath(full)
    if os.path.commonpath([real_root, real]) != real_root or real == real_root:
        raise UnsafePathError(f"{file_name!r}: a link to {real}, outside the image folder")
    return Path(full)


def _open_regular(path: str | os.PathLike):
    """The image file opened for reading, refused (ImageError) unless it is a regular file."""
    try:
        return open_regular(path)
    except FileNotFoundError:
        raise ImageError(f"{path}: image file not found") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a folder, not an image file") from None
    except NotARegularFile:
        raise ImageError(f"{path}: not a regular file (a pipe, device or socket)") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror})") from None


def load_rgb(path: str | os.PathLike, expected_size: tuple[int, int] | None = None) -> np.ndarray:
    """Load an image as ``(height, width, 3)`` uint8 RGB.

    Grayscale, palette, CMYK, 16-bit and RGBA images are converted (alpha is dropped). When
    ``expected_size`` (width, height) is given and the stored pixels do not have it but their
    EXIF-rotated version does, the rotated version is returned: COCO's boxes and polygons refer
    to the image as annotated.

    Raises:
        ImageError: the file is missing, not a regular file, not an image, over
            :data:`MAX_IMAGE_PIXELS` (checked from the header, before decoding), truncated or
            corrupt, or its size differs from ``expected_size``.
    """
    from PIL import Image, UnidentifiedImageError

    with _open_regular(path) as f:
        try:
            with Image.open(f) as im:
                return _decode(path, im, expected_size)
        except UnidentifiedImageError:
            raise ImageError(f"{path}: not an image file") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageError(f"{path}: refused, a decompression bomb ({e})") from None
        except MemoryError:
            raise ImageError(f"{path}: too large to decode in memory") from None
        except (OSError, ValueError, SyntaxError, EOFError) as e:
            raise ImageError(f"{path}: corrupt or truncated image ({e})") from None


def displayed_size(path: str | os.PathLike) -> tuple[int, int]:
    """An image's (width, height) as a viewer shows it (EXIF rotation applied), read from its
    header without decoding: the size annotations refer to when a file does not give one.

    Raises:
        ImageError: as :func:`load_rgb` for a file that cannot be opened or is not an image.
    """
    from PIL import Image, UnidentifiedImageError

    with _open_regular(path) as f:
        try:
            with Image.open(f) as im:
                w, h = im.size
                orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            raise ImageError(f"{path}: refused, a decompression bomb ({e})") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
            raise ImageError(f"{path}: not an image file") from None
    return (h, w) if orientation in _QUARTER_TURNS else (w, h)


_EXIF_ORIENTATION = 0x0112
_QUARTER_TURNS = (5, 6, 7, 8)  # EXIF orientations that swap width and height


def read_image_bytes(path: str | os.PathLike) -> bytes:
    """An image file's bytes, for decoders outside PIL (the runner's GPU JPEG path), after the
    same refusals as :func:`load_rgb`: not a regular file, or over :data:`MAX_IMAGE_PIXELS` by
    its header.

    Raises:
        ImageError: as :func:`load_rgb`, except for decoding errors (the caller's decoder meets
            those).
    """
    import io

    from PIL import Image, UnidentifiedImageError

    with _open_regular(path) as f:
        try:
            data = f.read()
        except OSError as e:
            raise ImageError(f"{path}: cannot read ({e.strerror})") from None
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{path}: refused, a decompression bomb ({e})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        raise ImageError(f"{path}: not an image file") from None
    if w * h > MAX_IMAGE_PIXELS:
        raise ImageError(f"{path}: image is {w}x{h}, over the limit of {MAX_IMAGE_PIXELS:,} pixels")
    return data


def _decode(path, im, expected_size: tuple[int, int] | None) -> np.ndarray:
    """``load_rgb`` on an opened (not yet decoded) PIL image."""
    from PIL import Image, ImageOps

    w, h = im.size
    if w * h > MAX_IMAGE_PIXELS:
        raise ImageError(
            f"{path}: image is {w}x{h}, over the limit of {MAX_IMAGE_PIXELS // 10**6} "
            "megapixels; refused before decoding"
        )
    im.load()
    if expected_size and im.size != tuple(expected_size):
        rotated = ImageOps.exif_transpose(im)
        if rotated.size != tuple(expected_size):
            raise ImageError(
                f"{path}: image is {w}x{h} but the annotations say "
                f"{expected_size[0]}x{expected_size[1]}"
            )
        im = rotated
    if im.mode == "I;16" or im.mode == "I":
        im = Image.fromarray((np.asarray(im, np.float32) / 256).clip(0, 255).astype(np.uint8))
    return np.asarray(im.convert("RGB"))


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
