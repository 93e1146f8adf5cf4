"""Pages under Streamlit's AppTest: default sample, real COCO, bad paths, filters, deep links."""

from __future__ import annotations

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from explorer.coco import open_index
from tests.helpers import ROOT, pycoco, tiny

APP = str(ROOT / "app.py")


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    st.cache_data.clear()
    st.cache_resource.clear()
    monkeypatch.delenv("EXPLORER_COCO", raising=False)
    monkeypatch.delenv("EXPLORER_IMAGES", raising=False)


def run(query: dict | None = None, **env) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def qp(at, key):
    v = at.query_params.get(key)
    return v[-1] if isinstance(v, list) else v


def test_default_is_the_sample_grid(sample_root):
    at = run()
    assert texts(at.title) == ["Browse"]
    assert any("100** of 100 images match" in m for m in texts(at.markdown))
    assert sum(b.label.isdigit() for b in at.button) == 24
    assert "sample val2017" in " ".join(texts(at.sidebar.caption))


def test_real_coco_from_environment_and_filters(monkeypatch):
    ann, images = tiny("val2017")
    monkeypatch.setenv("EXPLORER_COCO", str(ann))
    monkeypatch.setenv("EXPLORER_IMAGES", str(images))
    at = run()
    assert "80 images, 815 annotations" in " ".join(texts(at.sidebar.caption))
    ref = pycoco(ann)
    want = {a["image_id"] for a in ref.dataset["annotations"] if a["category_id"] == 1}
    at.multiselect(key="b_cats").set_value([1]).run()
    assert any(f"**{len(want)}** of 80 images match" in m for m in texts(at.markdown))
    assert qp(at, "cats") == "1"  # the URL follows the filters
    at.selectbox(key="b_crowd").set_value("only").run()
    crowd_person = {a["image_id"] for a in ref.dataset["annotations"] if a["iscrowd"]} & want
    assert any(f"**{len(crowd_person)}** of 80 images match" in m for m in texts(at.markdown))


def test_deep_link_opens_the_image_and_controls_rerun(monkeypatch):
    ann, images = tiny("val2017")
    monkeypatch.setenv("EXPLORER_COCO", str(ann))
    monkeypatch.setenv("EXPLORER_IMAGES", str(images))
    image_id = int(open_index(ann).images["id"][3])
    at = run({"image_id": str(image_id)})
    assert texts(at.subheader)[0].startswith(f"Image {image_id} ·")
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == len(
        pycoco(ann).imgToAnns[image_id]
    )
    at.slider(key="d_alpha").set_value(0.2).run()
    assert not at.exception and texts(at.subheader)[0].startswith(f"Image {image_id}")
    at.toggle(key="d_boxes").set_value(False).run()
    assert not at.exception
    next(b for b in at.button if b.label == "← Grid").click().run()
    assert not at.subheader and qp(at, "image_id") is None


def test_open_from_the_grid_sets_the_url(sample_root):
    at = run()
    button = next(b for b in at.button if b.label.isdigit())
    image_id = button.label
    button.click().run()
    assert texts(at.subheader)[0].startswith(f"Image {image_id}")
    assert qp(at, "image_id") == image_id


def test_bad_startup_path_shows_an_error_and_the_sample(monkeypatch, tmp_path):
    monkeypatch.setenv("EXPLORER_COCO", str(tmp_path / "missing.json"))
    at = run()
    assert any("missing.json" in e for e in texts(at.error))
    assert "sample val2017" in " ".join(texts(at.sidebar.caption))


def picker() -> AppTest:
    at = AppTest.from_file(str(ROOT / "tests" / "app" / "picker_app.py"), default_timeout=90).run()
    assert not at.exception
    return at


def current(at) -> str:
    return next(m for m in texts(at.markdown) if m.startswith("current: "))


def test_picker_bad_file_keeps_the_previous_dataset(tmp_path, sample_root):
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [')
    at = picker()
    assert current(at) == "current: sample val2017 (100 images)"
    at.radio(key="ds_kind").set_value("Files").run()
    at.text_input(key="ds_ann").input(str(bad)).run()
    next(b for b in at.button if b.label == "Open").click().run()
    assert not at.exception
    assert any("not valid JSON" in e for e in texts(at.error))
    assert current(at) == "current: sample val2017 (100 images)"
    at.text_input(key="ds_ann").input(str(tmp_path / "nope.json")).run()
    next(b for b in at.button if b.label == "Open").click().run()
    assert any("nope.json: file not found" in e for e in texts(at.error))


def test_picker_coco_folder_and_sample_split():
    ann, _ = tiny("val2017")
    at = picker()
    at.radio(key="ds_kind").set_value("COCO folder").run()
    at.text_input(key="ds_root").input(str(ann.parent.parent)).run()
    assert at.selectbox(key="ds_split").options == ["coco-tiny train2017", "coco-tiny val2017"]
    at.selectbox(key="ds_split").set_value("coco-tiny train2017").run()
    next(b for b in at.button if b.label == "Open").click().run()
    assert current(at) == "current: coco-tiny train2017 (80 images)"
    at.radio(key="ds_kind").set_value("Sample").run()
    at.selectbox(key="ds_sample").set_value("sample train2017").run()
    next(b for b in at.button if b.label == "Open").click().run()
    assert current(at) == "current: sample train2017 (320 images)"
    at.radio(key="ds_kind").set_value("COCO folder").run()
    at.text_input(key="ds_root").input("/no/such/folder").run()
    assert any("not a folder" in e for e in texts(at.error))


def test_unknown_deep_link_warns():
    at = run({"image_id": "999999999"})
    assert any("No image with id 999999999" in w for w in texts(at.warning))


def test_distributions_page(monkeypatch):
    ann, images = tiny("val2017")
    monkeypatch.setenv("EXPLORER_COCO", str(ann))
    at = run({"cats": "1"})
    at.switch_page("pages/distributions.py").run()
    assert not at.exception and texts(at.title) == ["Distributions"]
    assert "80 images, 815 annotations" in texts(at.caption)[0]
    at.toggle(key="x_follow").set_value(True).run()
    person_images = len(
        {a["image_id"] for a in pycoco(ann).dataset["annotations"] if a["category_id"] == 1}
    )
    assert texts(at.caption)[0].startswith(f"{person_images} images")
    at.toggle(key="x_log").set_value(True).run()
    at.selectbox(key="x_sort").set_value("name").run()
    assert not at.exception


def test_classify_page_with_an_untrained_model(sample_root):
    at = run({"image_id": "200015"})
    at.switch_page("pages/classify.py").run()
    assert not at.exception
    assert any(
        "published weights alexnet-owt-7be5be79.pth are not here" in w for w in texts(at.warning)
    )
    at.radio(key="c_weights").set_value("Untrained").run()
    assert not at.exception
    assert any("UNTRAINED" in e for e in texts(at.error))  # labelled wherever its output shows
    assert at.number_input(key="c_image").value == 200015
    assert len(at.get("plotly_chart")) == 1 and len(at.dataframe) == 1
    crops = at.dataframe[0].value
    index = open_index(sample_root / "annotations" / "instances_val2017.json")
    row = index.image_row(200015)
    assert len(crops) == sum(
        not index.annotations["iscrowd"][a] for a in index.annotation_rows(row)
    )
    at.selectbox(key="c_model").set_value("alexnet-classic").run()  # learns the dataset's classes
    assert not at.exception and set(at.dataframe[0].value["as category"]) <= {
        c["name"] for c in index.categories
    }
    at.button(key="c_run").click().run()
    assert not at.exception
    assert any("[UNTRAINED]" in m and "top-1" in m for m in texts(at.markdown))


def test_segment_page_with_an_untrained_model(sample_root):
    at = run({"q": "200015"})  # a Browse filter of one image, which the evaluation follows
    at.switch_page("pages/segment.py").run()
    at.selectbox(key="s_model").set_value("deeplabv3-mobilenet-v3-large").run()
    at.radio(key="s_weights").set_value("Untrained").run()
    assert not at.exception and any("UNTRAINED" in e for e in texts(at.error))
    assert any(m.startswith("This image: pixel accuracy") for m in texts(at.markdown))
    at.radio(key="s_view").set_value("Errors").run()
    assert not at.exception
    at.button(key="s_run").click().run()
    assert not at.exception
    assert any("[UNTRAINED] on 1 images" in m for m in texts(at.markdown))
    assert len(at.get("plotly_chart")) == 3  # this image's IoU, the confusion matrix, IoU per class
    at.selectbox(key="s_model").set_value("smp-deeplabv3").run()
    assert not at.exception and any("smp-deeplabv3 is UNTRAINED" in e for e in texts(at.error))


def test_train_page_runs_a_tiny_job_to_the_end(monkeypatch, sample_root, tmp_path):
    import json
    import time

    from explorer.app import caches

    doc = json.loads((sample_root / "annotations" / "instances_val2017.json").read_text())
    doc["images"] = doc["images"][:16]
    keep = {im["id"] for im in doc["images"]}
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] in keep]
    (tmp_path / "tiny.json").write_text(json.dumps(doc))
    monkeypatch.setenv("EXPLORER_COCO", str(tmp_path / "tiny.json"))
    monkeypatch.setenv("EXPLORER_IMAGES", str(sample_root / "val2017"))
    at = run()
    at.switch_page("pages/train.py").run()
    assert not at.exception and texts(at.title) == ["Train"]
    assert any("seeded 20%" in c for c in texts(at.caption))
    at.selectbox(key="t_task").set_value("classify").run()
    at.selectbox(key="t_model_classify").set_value("alexnet-classic")
    at.selectbox(key="t_preset").set_value("none")
    at.number_input(key="t_epochs").set_value(2)
    next(b for b in at.button if b.label.startswith("Start")).click().run()
    assert not at.exception
    queue = caches.job_queue()
    deadline = time.time() + 240
    while queue.busy() and time.time() < deadline:
        time.sleep(1)
        at.run()  # the page stays responsive while the worker trains
        assert not at.exception
    job = queue.snapshot()[0]
    assert job.status == "finished", job.message
    at.run()
    table = at.dataframe[0].value  # the runs table
    assert table.iloc[0]["status"] == "finished" and table.iloc[0]["model"] == "alexnet-classic"
    assert table.iloc[0]["epoch"] == "2/2"
    assert len(at.get("plotly_chart")) >= 1  # the curves


def test_train_page_polls_only_while_a_job_runs_and_resumes_a_stopped_run(
    monkeypatch, sample_root, tiny_data
):
    import threading
    import time

    from explorer.app import caches
    from explorer.training import Stopped, TrainConfig, runs, train
    from explorer.training.events import EpochEnd

    stop = threading.Event()
    run_dir = runs.runs_root() / "20260101-000000-classify-alexnet-classic-stopped"
    cfg = TrainConfig(
        task="classify",
        model="alexnet-classic",
        out=str(run_dir),
        device="cpu",
        epochs=2,
        batch_size=8,
        image_size=96,
        workers=0,
        **tiny_data,
    )
    with pytest.raises(Stopped):
        train(cfg, lambda e: stop.set() if isinstance(e, EpochEnd) else None, stop)
    polls = []
    real_fragment = st.fragment

    def fragment(func=None, *, run_every=None):
        polls.append(run_every)
        return real_fragment(func, run_every=run_every)

    monkeypatch.setattr(st, "fragment", fragment)
    at = run()
    at.switch_page("pages/train.py").run()
    assert not at.exception and polls[-1] is None  # idle: the page never reruns by itself
    classifiers = at.selectbox(key="t_model_classify").options
    assert "alexnet-classic" in classifiers and "smp-deeplabv3" not in classifiers
    at.selectbox(key="t_task").set_value("segment").run()
    segmenters = at.selectbox(key="t_model_segment").options
    assert "smp-deeplabv3" in segmenters and "alexnet-classic" not in segmenters
    row = at.dataframe[0].value.set_index("run").loc[run_dir.name]
    assert row["status"] == "stopped" and row["epoch"] == "1/2"
    assert run_dir.name in at.selectbox(key="t_resume_run").options  # the name, whole
    at.selectbox(key="t_resume_run").set_value(run_dir.name)
    at.button(key="t_resume").click().run()
    assert not at.exception and polls[-1] == 1.0  # a job runs: the page polls
    queue = caches.job_queue()
    deadline = time.time() + 240
    while queue.busy() and time.time() < deadline:
        time.sleep(1)
        at.run()
    job = queue.snapshot()[0]
    assert job.status == "finished" and job.resume == str(run_dir), job.message
    at.run()
    assert polls[-1] is None  # idle again
    row = at.dataframe[0].value.set_index("run").loc[run_dir.name]
    assert row["status"] == "finished" and row["epoch"] == "2/2"
    resumable = [s.options for s in at.selectbox if s.key == "t_resume_run"]
    assert run_dir.name not in sum(resumable, [])  # nothing left to resume
    assert at.multiselect(key="t_metric").value == ["train_loss_step"]  # the per-step loss
    assert run_dir.name in at.multiselect(key="t_watch").value


def test_compare_page_with_two_tiny_trained_checkpoints(sample_root):
    from explorer.training import TrainConfig, runs, train

    ann = sample_root / "annotations"
    common = {
        "coco": str(ann / "instances_val2017.json"),
        "images": str(sample_root / "val2017"),
        "epochs": 1,
        "device": "cpu",
        "workers": 0,
    }
    train(
        TrainConfig(
            task="classify",
            model="alexnet-classic",
            batch_size=32,
            out=str(runs.runs_root() / "t-cls"),
            **common,
        )
    )
    train(
        TrainConfig(
            task="segment",
            model="smp-deeplabv3",
            encoder="resnet18",
            image_size=64,
            batch_size=8,
            out=str(runs.runs_root() / "t-seg"),
            **common,
        )
    )
    at = run({"q": "200015"})  # a Browse filter of one image
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    at.selectbox(key="k1_model").set_value("run: t-cls").run()
    at.selectbox(key="k2_model").set_value("run: t-seg").run()
    assert not at.exception and not at.warning
    at.button(key="k_run").click().run()
    assert not at.exception
    table = at.dataframe[0].value  # the 2x2 agreement table
    index = open_index(ann / "instances_val2017.json")
    row = index.image_row(200015)
    n = sum(not index.annotations["iscrowd"][a] for a in index.annotation_rows(row))
    assert int(table.to_numpy().sum()) == n  # every object of the image, all comparable
    assert len(at.get("plotly_chart")) == 3


def test_anatomy_page_on_the_sample(sample_root):
    at = run({"image_id": "200015"})
    at.switch_page("pages/anatomy.py").run()
    assert not at.exception
    at.radio(key="a_weights").set_value("Untrained").run()  # alexnet: no published weights here
    assert not at.exception and any("UNTRAINED" in e for e in texts(at.error))
    assert (
        len(at.dataframe[0].value) == 15
    )  # torchvision AlexNet: 5 conv, 3 max, avg, 2 x (dropout, fc), fc, softmax
    at.selectbox(key="a_model").set_value("alexnet-classic").run()
    assert not at.exception and len(at.dataframe[0].value) == 14
    at.selectbox(key="a_layer").set_value(at.selectbox(key="a_layer").options[3]).run()
    at.slider(key="a_channel").set_value(5).run()
    assert not at.exception
    at.radio(key="a_task").set_value("segment").run()
    at.selectbox(key="a_model").set_value("deeplabv3-mobilenet-v3-large").run()
    at.radio(key="a_weights").set_value("Untrained").run()
    assert not at.exception and at.selectbox(key="a_class") is not None
