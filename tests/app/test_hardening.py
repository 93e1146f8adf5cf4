"""The app served to others: strict query parameters, no tracebacks in the browser, an upload
limit, and EXPLORER_DATA_ROOTS confining the dataset picker."""

from __future__ import annotations

import os
import shutil
import tomllib

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from explorer.coco import open_index
from explorer.coco.view_state import (
    INT64_MAX,
    BrowseState,
    browse_from_query,
    browse_to_query,
    parse_id,
)
from tests.helpers import ROOT, tiny, write_coco

# Each of these reached int() or a widget on main: '²' passes str.isdigit() and int() refuses
# it; int() accepts the Arabic-Indic '١٢', '1_0', ' 12' and '+5'.
NOT_IDS = [
    "²",
    "١٢",
    "١",
    "1_0",
    " 12",
    "12\n",
    "+5",
    "-1",
    "1e3",
    "0x10",
    "",
    "9" * 30,
    str(INT64_MAX + 1),
    str(2**64),
]


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    st.cache_data.clear()
    st.cache_resource.clear()
    for name in ("EXPLORER_COCO", "EXPLORER_IMAGES", "EXPLORER_DATA_ROOTS"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("value", NOT_IDS)
def test_parse_id_takes_ascii_digits_within_int64_only(value):
    assert parse_id(value) is None


def test_parse_id_keeps_what_is_an_id():
    assert [parse_id(v) for v in ("0", "007", "397133", str(INT64_MAX))] == [
        0,
        7,
        397133,
        INT64_MAX,
    ]


def test_browse_state_drops_what_is_not_a_number():
    s = browse_from_query({"image_id": "²", "cats": "1,١٢,²,3", "inst": "١-٩", "page": "١٢"})
    assert (s.image_id, s.categories, s.instances, s.page) == (None, (1, 3), None, 1)


def test_browse_state_image_ids_round_trip_through_the_url():
    s = browse_from_query({"ids": "397133, 12,x,12,²,7"})  # bad ones dropped, repeats once
    assert s.image_ids == (397133, 12, 7)
    assert browse_to_query(s) == {"ids": "397133,12,7"}
    assert browse_from_query(browse_to_query(s)) == s
    assert s.image_filter().image_ids == (397133, 12, 7)
    assert "ids" not in browse_to_query(BrowseState())  # none: no parameter


def test_browse_state_predictions_view_round_trips_and_drops_what_it_cannot_read():
    s = browse_from_query(
        {"pred": "0123456789ab", "score": "0.35", "fn": "18", "fp": "background", "sort": "errors"}
    )
    assert (s.predictions, s.min_score, s.missed, s.false_positive, s.order) == (
        "0123456789ab", 0.35, 18, "background", "errors"
    )  # fmt: skip
    assert browse_from_query(browse_to_query(s)) == s
    bad = browse_from_query(
        {"pred": "../x.json", "score": "1e9", "fn": "١٢", "fp": "DROP", "sort": "random"}
    )
    assert bad == BrowseState()  # each bad value dropped to its default
    assert browse_to_query(BrowseState()) == {}  # the defaults write nothing
    assert browse_from_query({"score": "nan"}).min_score == 0.5


def test_server_config_hides_tracebacks_and_limits_uploads():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    # "none": the browser gets a generic message, the traceback goes to the server log only.
    assert config["client"]["showErrorDetails"] == "none"
    # The largest published weights (AlexNet, DeepLabV3-ResNet101: 233 MB) fit, and no more.
    assert 250 <= config["server"]["maxUploadSize"] <= 300


def _app(query: dict[str, str]) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


@pytest.mark.parametrize("value", ["²", "١٢", str(2**63), str(2**53 + 1)])
def test_browse_deep_link_with_a_bad_image_id_shows_the_grid(value, sample_root):
    at = _app({"image_id": value, "page": value})
    assert not at.exception, [e.value for e in at.exception]
    assert any("of 100 images match" in m.value for m in at.markdown)


@pytest.mark.parametrize("value", ["²", "١٢", str(2**53 + 1)])
def test_model_page_with_a_bad_image_id_warns_in_one_line(value, sample_root):
    at = _app({"image_id": value})
    at.switch_page("pages/classify.py").run()
    at.query_params["image_id"] = value
    at.radio(key="c_weights").set_value("Untrained").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(w.value.startswith("Ignored image_id=") for w in at.warning)
    first = open_index(sample_root / "annotations" / "instances_val2017.json").images["id"][0]
    assert at.number_input(key="c_image").value == first  # the first image instead


# --- EXPLORER_DATA_ROOTS ------------------------------------------------------------------------


def picker(monkeypatch, *roots) -> AppTest:
    monkeypatch.setenv("EXPLORER_DATA_ROOTS", os.pathsep.join(str(r) for r in roots))
    at = AppTest.from_file(str(ROOT / "tests" / "app" / "picker_app.py"), default_timeout=90)
    return at.run()


def current(at) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("current: "))


def open_files(at, ann, images="") -> AppTest:
    at.radio(key="ds_kind").set_value("Files").run()
    at.text_input(key="ds_ann").input(str(ann)).run()
    at.text_input(key="ds_images").input(str(images)).run()
    next(b for b in at.button if b.label == "Open").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _one_image(path):
    image = {"id": 7, "file_name": "a.jpg", "width": 64, "height": 48}
    ann = {
        "id": 1,
        "image_id": 7,
        "category_id": 1,
        "iscrowd": 0,
        "area": 100.0,
        "bbox": [1, 1, 10, 10],
        "segmentation": [[1, 1, 11, 1, 11, 11]],
    }
    return write_coco(path, [image], [ann])


def test_roots_open_inside_and_refuse_outside_in_one_line(monkeypatch, tmp_path, sample_root):
    inside, outside = tmp_path / "data", tmp_path / "private"
    inside.mkdir(), outside.mkdir()
    good = _one_image(inside / "mine.json")
    secret = _one_image(outside / "secret.json")
    at = picker(monkeypatch, tmp_path / "elsewhere", inside)
    assert current(at) == "current: sample val2017 (100 images)"  # the sample is always there
    open_files(at, secret)
    errors = [e.value for e in at.sidebar.error]
    assert errors == [f"{secret}: outside the folders this server may open"]
    assert current(at) == "current: sample val2017 (100 images)"  # the last good one stays
    # Whether a file exists outside is not revealed either.
    open_files(at, outside / "nope.json")
    assert [e.value for e in at.sidebar.error] == [
        f"{outside / 'nope.json'}: outside the folders this server may open"
    ]
    open_files(at, inside / ".." / "private" / "secret.json")
    assert "outside the folders" in at.sidebar.error[0].value
    open_files(at, good)
    assert not at.sidebar.error and current(at) == "current: mine.json (1 images)"
    open_files(at, good, outside)  # an image folder outside is refused too
    assert "outside the folders" in at.sidebar.error[0].value
    assert current(at) == "current: mine.json (1 images)"


def test_roots_resolve_symbolic_links(monkeypatch, tmp_path, sample_root):
    inside, outside = tmp_path / "data", tmp_path / "private"
    inside.mkdir(), outside.mkdir()
    (inside / "link.json").symlink_to(_one_image(outside / "secret.json"))
    (inside / "dir").symlink_to(outside)
    at = open_files(picker(monkeypatch, inside), inside / "link.json")
    assert "outside the folders" in at.sidebar.error[0].value
    open_files(at, inside / "dir" / "secret.json")
    assert "outside the folders" in at.sidebar.error[0].value
    assert current(at) == "current: sample val2017 (100 images)"


def test_roots_confine_the_coco_folder_picker(monkeypatch, tmp_path, sample_root):
    ann, _ = tiny("val2017")
    root = tmp_path / "data" / "coco"
    shutil.copytree(ann.parent, root / "annotations")
    (root / "annotations" / "instances_evil.json").symlink_to(ann)  # a split leading out
    at = picker(monkeypatch, tmp_path / "data")
    at.radio(key="ds_kind").set_value("COCO folder").run()
    at.text_input(key="ds_root").input(str(ann.parent.parent)).run()
    assert not at.exception and "outside the folders" in at.sidebar.error[0].value
    assert not at.selectbox(key="ds_split").options if _has(at, "ds_split") else True
    at.text_input(key="ds_root").input(str(root)).run()
    at.selectbox(key="ds_split").set_value("coco evil").run()
    next(b for b in at.button if b.label == "Open").click().run()
    assert "outside the folders" in at.sidebar.error[0].value
    at.selectbox(key="ds_split").set_value("coco val2017").run()
    next(b for b in at.button if b.label == "Open").click().run()
    assert not at.sidebar.error and current(at) == "current: coco val2017 (80 images)"


def _has(at, key) -> bool:
    try:
        at.selectbox(key=key)
    except KeyError:
        return False
    return True


def test_without_roots_any_readable_folder_opens(tmp_path, sample_root):
    good = _one_image(tmp_path / "anywhere.json")
    at = AppTest.from_file(str(ROOT / "tests" / "app" / "picker_app.py"), default_timeout=90)
    open_files(at.run(), good)
    assert current(at) == "current: anywhere.json (1 images)"
