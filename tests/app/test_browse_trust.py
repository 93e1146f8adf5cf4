"""Issue 22, Browse: what the screen shows is what the page does (real browser, and AppTest).

- Reset filters resets the widgets too, and the next change keeps them reset (walk item 1).
- Back and Forward step through grid pages and opened images (walk item 8).
- Left/Right move between images in the detail view; a thumbnail is one tab stop (item 12).
- A start-up image folder that does not exist opens the dataset and says so (walk item 7).

The browser harness (server, page, settle) is test_e2e's.
"""

from __future__ import annotations

import os
import re

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from explorer.coco.sources import initial_source
from tests.app.test_e2e import CHROMIUM, app_url, no_exception, page, serve, settle, shot
from tests.helpers import ROOT, tiny

__all__ = ["app_url", "page"]  # test_e2e's fixtures, used here by name

THUMB = re.compile(r"^\d+$")  # a grid thumbnail's button is labelled with its image id


def match_line(page) -> str:
    return page.locator("[data-testid='stMarkdown']").filter(has_text="images match").inner_text()


def widget_text(page, testid: str, label: str) -> str:
    """What a labelled widget shows: its text and the values of its inputs."""
    return (
        page.get_by_test_id(testid)
        .filter(has_text=label)
        .first.evaluate(
            "e => e.textContent + '|' + [...e.querySelectorAll('input')].map(i => i.value).join()"
        )
    )


def shown_image(page) -> str:
    """The image the detail view shows ("GRID" on the grid)."""
    heading = page.locator("h3").filter(has_text="Image ")
    return heading.first.inner_text().split(" ·")[0] if heading.count() else "GRID"


def grid_page(page) -> int:
    return int(page.get_by_label(re.compile(r"^Page \(of")).input_value())


@pytest.mark.e2e
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="no /usr/bin/chromium")
def test_reset_filters_resets_what_the_widgets_show(app_url, page):
    """The callback used to delete the widgets' keys: the results reset but the chips, query box
    and Crowd kept their values, and the next change applied them again."""
    page.goto(f"{app_url}/?cats=1&crowd=only&q=0")
    settle(page)
    page.get_by_text("images match").wait_for(timeout=60_000)
    everything = match_line(page).split(" of ")[1]  # "80 images match" (coco-tiny), or the sample's
    before = match_line(page)
    assert "only" in widget_text(page, "stSelectbox", "Crowd")
    page.get_by_role("button", name="Reset filters").click()
    settle(page)
    total = everything.split()[0]
    assert match_line(page) == f"{total} of {everything}" != before
    categories = page.get_by_test_id("stMultiSelect").filter(has_text="Categories").first
    assert categories.locator("[data-baseweb='tag']").count() == 0  # no chip left
    assert page.get_by_label("Image id or file name").input_value() == ""
    crowd = widget_text(page, "stSelectbox", "Crowd")
    assert "any" in crowd and "only" not in crowd
    shot(page, "browse-after-reset")
    page.get_by_role("button", name="Next page ▶").click()  # the next change
    settle(page)
    no_exception(page)
    assert match_line(page) == f"{total} of {everything}"
    assert "page=2" in page.url
    assert not re.search(r"[?&](cats|crowd|q)=", page.url), page.url


@pytest.mark.e2e
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="no /usr/bin/chromium")
def test_back_and_forward_step_through_browse(app_url, page):
    """Streamlit pushes a history entry for each new query string, but the page ignored an
    address it had written itself: Back left the image open and wrote its address again."""
    page.goto(app_url)
    settle(page)
    page.get_by_text("images match").wait_for(timeout=60_000)
    page.get_by_role("button", name="Next page ▶").click()
    settle(page)
    assert grid_page(page) == 2
    thumb = page.get_by_role("button", name=THUMB).first
    image_id = thumb.inner_text().strip()
    thumb.click()
    settle(page)
    assert shown_image(page) == f"Image {image_id}"
    page.go_back()
    settle(page)
    no_exception(page)
    assert shown_image(page) == "GRID" and grid_page(page) == 2
    assert "image_id" not in page.url and "page=2" in page.url
    page.go_back()
    settle(page)
    assert shown_image(page) == "GRID" and grid_page(page) == 1
    page.go_forward()
    settle(page)
    assert shown_image(page) == "GRID" and grid_page(page) == 2
    page.go_forward()
    settle(page)
    no_exception(page)
    assert shown_image(page) == f"Image {image_id}"
    assert f"image_id={image_id}" in page.url


@pytest.mark.e2e
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="no /usr/bin/chromium")
def test_arrow_keys_move_between_images_and_a_thumbnail_is_one_tab_stop(app_url, page):
    page.goto(app_url)
    settle(page)
    page.get_by_text("images match").wait_for(timeout=60_000)
    thumbs = page.get_by_role("button", name=THUMB)
    first, second, third = (thumbs.nth(i).inner_text().strip() for i in range(3))
    thumbs.first.focus()
    page.keyboard.press("Tab")  # the next thumbnail's button, not the image's fullscreen button
    assert page.evaluate("document.activeElement.innerText.trim()") == second
    thumbs.first.click()
    settle(page)
    assert shown_image(page) == f"Image {first}"
    page.keyboard.press("ArrowRight")
    settle(page)
    assert shown_image(page) == f"Image {second}"
    page.keyboard.press("ArrowRight")
    settle(page)
    assert shown_image(page) == f"Image {third}"
    page.keyboard.press("ArrowLeft")
    settle(page)
    assert shown_image(page) == f"Image {second}"
    opacity = page.get_by_test_id("stSlider").filter(has_text="Mask opacity")
    opacity.get_by_role("slider").focus()  # a focused slider keeps its arrow keys
    page.keyboard.press("ArrowRight")
    settle(page)
    no_exception(page)
    assert shown_image(page) == f"Image {second}"
    assert opacity.get_by_test_id("stSliderThumbValue").inner_text() == "0.55"


# ---------------------------------------------------------------- a missing start-up image folder


def test_start_up_image_folder_that_does_not_exist_is_kept(tmp_path):
    ann, _ = tiny("val2017")
    missing = tmp_path / "no-such-folder"
    source = initial_source(["--coco", str(ann), "--images", str(missing)], {})
    assert source is not None
    assert source.annotations == str(ann) and source.images == str(missing)
    assert source.label == "coco-tiny val2017"


def test_missing_start_up_image_folder_opens_the_dataset_apptest(monkeypatch, tmp_path):
    ann, _ = tiny("val2017")
    st.cache_data.clear()
    st.cache_resource.clear()
    monkeypatch.setenv("EXPLORER_COCO", str(ann))
    monkeypatch.setenv("EXPLORER_IMAGES", str(tmp_path / "no-such-folder"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]  # no "Showing the sample instead"
    assert "**coco-tiny val2017** — 80 images" in " ".join(c.value for c in at.sidebar.caption)
    said = [w.value for w in at.warning if "Image folder not found" in w.value]
    assert said and str(tmp_path / "no-such-folder") in said[0]
    assert any("**80** of 80 images match" in m.value for m in at.markdown)


@pytest.fixture()
def missing_images_url(_cache_dir, tmp_path):
    ann, _ = tiny("val2017")
    env = dict(os.environ)
    env["EXPLORER_COCO"], env["EXPLORER_IMAGES"] = str(ann), str(tmp_path / "no-such-folder")
    env["EXPLORER_CACHE"] = str(tmp_path / "cache")  # no thumbnail drawn from the real images
    yield from serve(env, tmp_path / "server.log")


@pytest.mark.e2e
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="no /usr/bin/chromium")
def test_missing_start_up_image_folder_opens_the_dataset(missing_images_url, page):
    """It used to reject the whole dataset and show the sample instead."""
    page.goto(missing_images_url)
    settle(page)
    page.get_by_text("images match").wait_for(timeout=60_000)
    no_exception(page)
    assert match_line(page) == "80 of 80 images match"
    assert not page.get_by_text("Showing the sample instead").count()
    assert page.get_by_test_id("stAlert").filter(has_text="Image folder not found").count() >= 1
    thumbnails = page.locator(".st-key-b_grid img")
    assert thumbnails.count() == 24  # the placeholders, marked missing
    page.get_by_role("button", name=THUMB).first.click()
    settle(page)
    no_exception(page)
    assert page.get_by_text("image file not found").count() >= 1
    shot(page, "browse-missing-image-folder")


@pytest.mark.e2e
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="no /usr/bin/chromium")
def test_the_source_radio_follows_back_and_forward_across_datasets(app_url, page):
    """The picker's Source radio says which dataset is open after Back, Forward and a reload
    (the walk once saw the wrong one after a reload)."""
    page.goto(app_url)
    settle(page)
    page.get_by_text("images match").wait_for(timeout=60_000)
    side = page.get_by_test_id("stSidebar")

    def source() -> str:
        return side.locator("[data-testid='stRadioOption']:has(input:checked)").inner_text()

    started = source()
    caption = side.get_by_test_id("stCaptionContainer").first.inner_text()
    if "sample" in caption:
        pytest.skip("the server opened the sample: coco-tiny is absent")
    side.get_by_test_id("stRadioOption").filter(has_text="Sample").first.click()
    settle(page)
    side.get_by_test_id("stBaseButton-secondary").filter(has_text="Open").click()
    settle(page)
    assert source() == "Sample" and "sample val2017" in side.inner_text()
    page.reload()
    settle(page)
    page.get_by_text("images match").wait_for(timeout=60_000)
    assert source() == "Sample" and "sample val2017" in side.inner_text()
    page.go_back()
    settle(page)
    no_exception(page)
    assert source() == started and caption.split(" — ")[0] in side.inner_text()
    page.go_forward()
    settle(page)
    assert source() == "Sample" and "sample val2017" in side.inner_text()
