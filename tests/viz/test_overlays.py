"""Overlays: the colour legend names exactly the colours painted; thumbnails drawn at
thumbnail size, missing images marked."""

from __future__ import annotations

import io

import numpy as np

from explorer.coco import masks, open_index
from explorer.coco.dataset import Dataset
from explorer.viz import overlays
from tests.helpers import tiny


def test_legend_names_each_painted_colour(sample_root):
    index = open_index(sample_root / "annotations" / "instances_val2017.json")
    truth, _ = masks.semantic_mask(index, 0, "coco")
    colours = overlays.category_colours(index)
    names = {c["id"]: c["name"] for c in index.categories}
    entries = overlays.legend(truth, colours, names, skip=(0, 255))
    painted = sorted(set(np.unique(truth).tolist()) - {0, 255})
    assert [n for n, _ in entries] == [names[v] for v in painted]
    assert [c for _, c in entries] == [tuple(int(x) for x in colours[v]) for v in painted]
    html = overlays.legend_markdown(entries)
    assert html.count("■") == len(painted) and all(names[v] in html for v in painted)
    assert overlays.legend_markdown(overlays.legend(np.zeros((4, 4), np.uint8), colours, [])) == ""
    # a label without a name still gets one
    assert overlays.legend(np.full((2, 2), 7, np.uint8), colours, ["bg"]) == [
        ("label 7", tuple(int(x) for x in colours[7]))
    ]


def test_masks_drawn_at_a_smaller_size_match_the_full_masks_sampled():
    ann, _ = tiny("val2017")
    index = open_index(ann)
    for row in range(10):
        rows = index.annotation_rows(row)
        full, kept, _ = masks.instance_masks(index, row, rows)
        w, h = int(index.images["width"][row]), int(index.images["height"][row])
        size = (w // 4, h // 4)
        small, kept_small, skipped = masks.instance_masks_at(index, row, rows, size)
        assert not skipped and list(kept_small) == list(kept)
        assert small.shape == (len(kept), size[1], size[0])
        ys = ((np.arange(size[1]) + 0.5) * h / size[1]).astype(int)
        xs = ((np.arange(size[0]) + 0.5) * w / size[0]).astype(int)
        sampled = full[:, ys][:, :, xs]
        big = sampled.reshape(len(kept), -1).sum(1) > 40  # small objects vanish at 1/4 scale
        agree = (small == sampled).reshape(len(kept), -1).mean(1)
        assert (agree[big] > 0.97).all(), agree


def test_thumbnail_is_drawn_at_thumbnail_size_with_its_masks():
    ann, images = tiny("val2017")
    index = open_index(ann)
    area = np.add.reduceat(index.annotations["area"], index.images["ann_start"][:-1])
    row = int(np.argmax(area / (index.images["width"] * index.images["height"])))
    opts = overlays.OverlayOptions(boxes=False, labels=False, max_side=192)
    rgb, notes = overlays.compose_overlay(Dataset(index, images), row, opts)
    plain, _ = overlays.compose_overlay(
        Dataset(index, images),
        row,
        overlays.OverlayOptions(masks=False, boxes=False, labels=False, max_side=192),
    )
    assert not notes and max(rgb.shape[:2]) == 192
    drawn, _, _ = masks.instance_masks_at(
        index, row, index.annotation_rows(row), (rgb.shape[1], rgb.shape[0])
    )
    inside = drawn.any(0)
    diff = np.abs(rgb.astype(int) - plain).sum(2)
    assert inside.mean() > 0.2 and diff[inside].mean() > 20  # painted where the masks are
    assert (diff[~inside] == 0).all()  # and nowhere else


def test_a_missing_image_is_crossed_out_and_marked(tmp_path):
    ann, _ = tiny("val2017")
    index = open_index(ann)
    rgb, notes = overlays.compose_overlay(
        Dataset(index, tmp_path),
        0,
        overlays.OverlayOptions(masks=False, boxes=False, labels=False, max_side=192),
    )
    assert notes
    red = (rgb[..., 0] > 150) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90)
    h, w = rgb.shape[:2]
    assert red[h // 4, w // 4] or red[h // 4 - 1 : h // 4 + 2, w // 4 - 1 : w // 4 + 2].any()
    assert red.mean() > 0.03  # the cross and the "image missing" tag, not a plain grey tile


def test_a_cached_thumbnail_is_not_served_once_its_image_is_gone_or_changed(tmp_path):
    """Thumbnails are cached on disk per image file: another folder, a deleted or a replaced
    image draws again (the cache once served the old picture for a folder that was gone)."""
    import shutil

    ann, images = tiny("val2017")
    index = open_index(ann)
    name = str(index.images["file_name"][0])
    folder = tmp_path / "images"
    folder.mkdir()
    shutil.copy(images / name, folder / name)
    drawn = overlays.thumbnail_jpeg(Dataset(index, folder), 0)
    assert overlays.thumbnail_jpeg(Dataset(index, folder), 0) == drawn  # from the cache
    missing = overlays.thumbnail_jpeg(Dataset(index, tmp_path / "elsewhere"), 0)
    assert missing != drawn
    (folder / name).unlink()
    assert overlays.thumbnail_jpeg(Dataset(index, folder), 0) == missing  # the placeholder
    grey = np.full((index.images["height"][0], index.images["width"][0], 3), 128, np.uint8)
    from PIL import Image

    Image.fromarray(grey).save(folder / name, format="JPEG")
    assert overlays.thumbnail_jpeg(Dataset(index, folder), 0) not in (drawn, missing)


def _hue_degrees(rgb: np.ndarray) -> np.ndarray:
    """Hue of RGB uint8 pixels (n, 3) in degrees (0 for greys)."""
    import colorsys

    return np.array([colorsys.rgb_to_hsv(*(p / 255.0))[0] * 360 for p in rgb])


def test_error_overlay_shows_only_the_colours_its_legend_names(sample_root):
    """Issue 22, walk 12: the blended error overlay mixed the photo's colours into the error
    colours (and JPEG smeared them across borders), so it showed colours its legend lacked."""
    from PIL import Image

    images = sample_root / "val2017"
    index = open_index(sample_root / "annotations" / "instances_val2017.json", images=images)
    row = 0
    rgb, missing = overlays.load_image(Dataset(index, images), row)
    assert missing is None
    truth, _ = masks.semantic_mask(index, row, "coco")
    pred = np.roll(truth, 9, axis=1)  # shifted: correct, missed and false-positive pixels
    pred[pred == pred.max()] = 1 if pred.max() != 1 else 2  # a wrong class too
    codes = overlays.error_codes(truth, pred)
    entries = overlays.error_legend(codes)
    painted = sorted(set(np.unique(codes).tolist()) - {0})
    assert len(entries) == len(painted) >= 3
    shown = np.asarray(Image.open(io.BytesIO(overlays.encode_png(
        overlays.error_overlay(rgb, codes, 0.55)))))  # fmt: skip
    for (name, colour), code in zip(entries, painted, strict=True):
        pixels = shown[codes == code].astype(int)
        if max(colour) == min(colour):  # a grey entry: painted pixels stay grey
            assert np.abs(pixels.max(1) - pixels.min(1)).max() <= 2, name
            continue
        want = _hue_degrees(np.array([colour], float))[0]
        off = np.abs((_hue_degrees(pixels.astype(float)) - want + 180) % 360 - 180)
        assert off.max() < 4, (name, float(off.max()))
    clear = shown[codes == 0].astype(int)  # the photo in grey: no colour of its own
    assert np.abs(clear.max(1) - clear.min(1)).max() <= 1
