"""Hostile images: each is one ImageError (or UnsafePathError), never a hang or a memory blow-up."""

from __future__ import annotations

import os
import shutil
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from explorer.coco.images import (
    MAX_IMAGE_PIXELS,
    load_rgb,
    read_image_bytes,
    resolve_image_path,
)
from explorer.errors import ImageError, UnsafePathError
from tests.helpers import tiny


def _png_header(path, width: int, height: int) -> None:
    """A valid PNG that declares ``width`` x ``height`` in a few hundred bytes (a bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _real_image() -> tuple:
    ann, images = tiny("val2017")
    first = sorted(images.glob("*.jpg"))[0]
    return images, first


def test_real_image_loads(tmp_path):
    _, first = _real_image()
    with Image.open(first) as im:
        w, h = im.size
    assert load_rgb(first, (w, h)).shape == (h, w, 3)


def test_decompression_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.jpg"
    _png_header(path, 90000, 90000)
    assert path.stat().st_size < 200
    with pytest.raises(ImageError, match="decompression bomb|megapixels"):
        load_rgb(path, (64, 48))


def test_image_just_under_pils_limit_is_refused_before_decoding(tmp_path):
    # 9400 x 9400 = 88 megapixels: PIL would decode it (3.8 GB in RGB after conversion, ~40 s)
    path = tmp_path / "big.png"
    _png_header(path, 9400, 9400)
    assert 9400 * 9400 > MAX_IMAGE_PIXELS
    t0 = time.perf_counter()
    with pytest.raises(ImageError, match="over the limit of 64 megapixels"):
        load_rgb(path)
    assert time.perf_counter() - t0 < 15  # decoding it would take ~40 s and 3.8 GB


def test_fifo_is_refused_without_hanging(tmp_path):
    path = tmp_path / "pipe.jpg"
    os.mkfifo(path)
    result: list = []

    def load() -> None:
        try:
            load_rgb(path)
        except ImageError as e:
            result.append(str(e))

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "load_rgb blocked on a FIFO"
    assert result and "not a regular file" in result[0]


def test_folder_and_missing_file(tmp_path):
    (tmp_path / "d.jpg").mkdir()
    with pytest.raises(ImageError, match="folder"):
        load_rgb(tmp_path / "d.jpg")
    with pytest.raises(ImageError, match="not found"):
        load_rgb(tmp_path / "none.jpg")


def test_truncated_real_image(tmp_path):
    _, first = _real_image()
    for n in (200, first.stat().st_size // 2):
        cut = tmp_path / f"cut{n}.jpg"
        cut.write_bytes(first.read_bytes()[:n])
        with pytest.raises(ImageError, match="corrupt or truncated"):
            load_rgb(cut)


def test_symlink_out_of_the_folder_is_refused(tmp_path):
    _, first = _real_image()
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "out.jpg").symlink_to(first)  # a real image, outside the folder
    (folder / "sub").symlink_to(first.parent, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="outside the image folder"):
        resolve_image_path(folder, "out.jpg")
    with pytest.raises(UnsafePathError, match="outside the image folder"):
        resolve_image_path(folder, f"sub/{first.name}")


def test_links_inside_the_folder_and_a_linked_folder_are_fine(tmp_path):
    _, first = _real_image()
    folder = tmp_path / "imgs"
    folder.mkdir()
    shutil.copy(first, folder / "a.jpg")
    (folder / "b.jpg").symlink_to(folder / "a.jpg")
    assert resolve_image_path(folder, "b.jpg") == folder / "b.jpg"
    linked = tmp_path / "linked"
    linked.symlink_to(folder, target_is_directory=True)  # the whole folder is a link: fine
    path = resolve_image_path(linked, "a.jpg")
    assert path == linked / "a.jpg"
    np.testing.assert_array_equal(load_rgb(path), load_rgb(first))


def test_raw_bytes_for_gpu_decoding_meet_the_same_refusals(tmp_path):
    """The runner's GPU JPEG path reads bytes itself: a FIFO or a bomb is refused there too."""
    _, first = _real_image()
    assert read_image_bytes(first) == first.read_bytes()
    bomb = tmp_path / "bomb.jpg"
    _png_header(bomb, 90000, 90000)
    with pytest.raises(ImageError, match="decompression bomb|over the limit"):
        read_image_bytes(bomb)
    pipe = tmp_path / "pipe.jpg"
    os.mkfifo(pipe)
    with pytest.raises(ImageError, match="not a regular file"):
        read_image_bytes(pipe)


def test_windows_separators_find_the_image_and_cannot_escape(tmp_path):
    """labelme and VIA on Windows write ``images\\x.jpg``; ``..\\`` and ``C:\\`` stay refused."""
    (tmp_path / "images").mkdir()
    Image.new("RGB", (8, 6)).save(tmp_path / "images" / "x.jpg")
    found = resolve_image_path(tmp_path, "images\\x.jpg")
    assert found == tmp_path / "images" / "x.jpg" and load_rgb(found, (8, 6)).shape == (6, 8, 3)
    for name in ("..\\secret.jpg", "images\\..\\..\\secret.jpg", "C:\\x.jpg", "\\\\host\\x.jpg"):
        with pytest.raises(UnsafePathError):
            resolve_image_path(tmp_path, name)
