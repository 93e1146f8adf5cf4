"""Image filters against answers computed from pycocotools' dicts."""

from __future__ import annotations

import pytest

from explorer.coco import open_index
from explorer.coco.filters import ImageFilter, filter_images
from explorer.types import SIZE_RANGES
from tests.helpers import pycoco, tiny


@pytest.fixture(scope="module")
def real():
    ann, _ = tiny("val2017")
    return open_index(ann), pycoco(ann)


def ids_of(index, rows):
    return set(index.images["id"][rows].tolist())


def test_no_filter_keeps_everything(real):
    index, ref = real
    assert ids_of(index, filter_images(index, ImageFilter())) == set(ref.imgs)


def test_categories_any_and_all(real):
    index, ref = real
    person, cup = 1, 47
    with_person = {a["image_id"] for a in ref.dataset["annotations"] if a["category_id"] == person}
    with_cup = {a["image_id"] for a in ref.dataset["annotations"] if a["category_id"] == cup}
    assert (
        ids_of(index, filter_images(index, ImageFilter(categories=(person, cup))))
        == with_person | with_cup
    )
    assert (
        ids_of(index, filter_images(index, ImageFilter(categories=(person, cup), match="all")))
        == with_person & with_cup
    )
    assert with_person & with_cup and with_person - with_cup  # the test means something


def test_supercategory(real):
    index, ref = real
    kitchen = {c["id"] for c in ref.dataset["categories"] if c["supercategory"] == "kitchen"}
    want = {a["image_id"] for a in ref.dataset["annotations"] if a["category_id"] in kitchen}
    assert ids_of(index, filter_images(index, ImageFilter(supercategories=("kitchen",)))) == want
    assert ids_of(index, filter_images(index, ImageFilter(supercategories=("no such",)))) == set()


def test_crowd_instances_area_query(real):
    index, ref = real
    crowd = {a["image_id"] for a in ref.dataset["annotations"] if a["iscrowd"]}
    assert ids_of(index, filter_images(index, ImageFilter(crowd=True))) == crowd
    assert ids_of(index, filter_images(index, ImageFilter(crowd=False))) == set(ref.imgs) - crowd
    many = {i for i in ref.imgs if 5 <= len(ref.imgToAnns[i]) <= 10}
    assert ids_of(index, filter_images(index, ImageFilter(instances=(5, 10)))) == many
    lo, hi = SIZE_RANGES["large"]
    large_person = {
        a["image_id"]
        for a in ref.dataset["annotations"]
        if lo <= a["area"] < hi and a["category_id"] == 1
    }
    assert (
        ids_of(index, filter_images(index, ImageFilter(categories=(1,), area=(lo, hi))))
        == large_person
    )
    some = next(iter(ref.imgs.values()))
    assert ids_of(index, filter_images(index, ImageFilter(query=str(some["id"])))) == {some["id"]}
    part = some["file_name"][4:10].upper()
    assert some["id"] in ids_of(index, filter_images(index, ImageFilter(query=part)))


def test_image_ids_keep_only_those_images(real):
    index, ref = real
    some = sorted(ref.imgs)[3:8:2]
    crowd = {a["image_id"] for a in ref.dataset["annotations"] if a["iscrowd"]}
    assert ids_of(index, filter_images(index, ImageFilter(image_ids=tuple(some)))) == set(some)
    both = ImageFilter(image_ids=tuple(some), crowd=False)  # with the other fields: all apply
    assert ids_of(index, filter_images(index, both)) == set(some) - crowd
    assert ids_of(index, filter_images(index, ImageFilter(image_ids=(-5,)))) == set()
    assert ids_of(index, filter_images(index, ImageFilter(image_ids=()))) == set(ref.imgs)
