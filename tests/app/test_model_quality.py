"""Model pages under AppTest with real weakly trained runs: the pickers prefer runs trained on the
open dataset's classes (and say when none is), and every page that draws conclusions from a
model shows its measured quality and warns plainly when it is weak."""

from __future__ import annotations

import pytest
import streamlit as st

from explorer.models.tasks import CLASSIFY, SEGMENT
from tests.app.test_pages import run, texts
from tests.helpers import tiny

CLS, SEG = "run: 20260102-000000-weak-cls", "run: 20260102-000000-weak-seg"


@pytest.fixture
def weak_cache(weak_runs, tmp_path, monkeypatch):
    """A cache and a work folder of its own whose runs folder holds the two weak runs (and nothing
    of the other tests' runs, which would change the pickers' defaults)."""
    st.cache_data.clear()
    st.cache_resource.clear()
    monkeypatch.delenv("EXPLORER_COCO", raising=False)
    monkeypatch.delenv("EXPLORER_IMAGES", raising=False)
    cache, runs = tmp_path / "cache", tmp_path / "work" / "runs"
    cache.mkdir()
    runs.mkdir(parents=True)
    for name, path in weak_runs.items():
        (runs / f"20260102-000000-weak-{name}").symlink_to(path, True)
    monkeypatch.setenv("EXPLORER_CACHE", str(cache))
    monkeypatch.setenv("EXPLORER_WORK", str(tmp_path / "work"))
    yield cache
    st.cache_resource.clear()


def _warned(at, *nouns: str) -> bool:
    return all(any(f"Weak {noun}" in w for w in texts(at.warning)) for noun in nouns)


PAGES = [  # page, its pickers' keys, its run button, the weak models it must warn about
    ("pages/mistakes.py", ("q1_model", "q2_model"), "q_run", (CLASSIFY.noun, SEGMENT.noun)),
    ("pages/compare.py", ("k1_model", "k2_model"), "k_run", (CLASSIFY.noun, SEGMENT.noun)),
    ("pages/classify.py", ("c_model",), "c_run", (CLASSIFY.noun,)),
    ("pages/map.py", ("m_model",), "m_run", (CLASSIFY.noun,)),
]


@pytest.mark.parametrize(("page", "pickers", "button", "nouns"), PAGES)
def test_a_weak_models_quality_is_shown_with_a_plain_warning(
    weak_cache, page, pickers, button, nouns
):
    at = run({"q": "200015"})  # one image of the sample: the runs were trained on its classes
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    # the runs are the defaults: trained on the open dataset's classes
    assert [at.selectbox(key=k).value for k in pickers] == [CLS, SEG][: len(pickers)]
    if page == "pages/map.py":
        at.radio(key="m_method").set_value("pca").run()
    at.button(key=button).click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert _warned(at, *nouns), texts(at.warning)
    shown = " ".join(texts(at.warning))
    assert "val_acc 0.0" in shown and ("val_miou 0.0" in shown) == (SEGMENT.noun in nouns)
    if page == "pages/mistakes.py":
        from explorer.app import state

        table = at.session_state[state.MISTAKES]
        assert table.empty or table["score"].max() < 0.5  # weak models: no confident suspect


def test_pickers_prefer_runs_trained_on_the_open_dataset(weak_cache, monkeypatch):
    ann, images = tiny("val2017")
    monkeypatch.setenv("EXPLORER_COCO", str(ann))
    monkeypatch.setenv("EXPLORER_IMAGES", str(images))
    at = run()
    at.switch_page("pages/mistakes.py").run()
    assert not at.exception
    # coco-tiny's 80 categories: the sample's shape runs are not the defaults, and it says so
    assert at.selectbox(key="q1_model").value not in (CLS, SEG)
    assert at.selectbox(key="q2_model").value not in (CLS, SEG)
    notes = " ".join(texts(at.caption))
    assert "None of the 1 finished classifier runs was trained on this dataset's classes" in notes
    assert "None of the 1 finished segmenter runs was trained on this dataset's classes" in notes
    box = at.selectbox(key="q1_model")
    label = box.format_func(CLS)
    assert label.endswith("· other classes")
    assert box.options.index(label) > box.index  # listed after the registry models
    at.switch_page("pages/classify.py").run()
    at.selectbox(key="c_model").set_value(CLS).run()  # chosen by hand: loaded, with a warning
    assert not at.exception, [e.value for e in at.exception]
    assert any("was trained on other classes" in w for w in texts(at.warning))
