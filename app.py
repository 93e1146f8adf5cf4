"""COCO Explorer, the Streamlit entry point: `streamlit run app.py [-- --coco ANN --images DIR]`."""

from pathlib import Path

import streamlit as st

from explorer.app import dataset

PAGES = Path(__file__).resolve().parent / "pages"

st.set_page_config(page_title="COCO Explorer", page_icon=":material/search:", layout="wide")
with dataset.app_frame():
    dataset.dataset_sidebar()
    st.navigation(
        [
            st.Page(
                PAGES / "browse.py", title="Browse", icon=":material/photo_library:", default=True
            ),
            st.Page(PAGES / "distributions.py", title="Distributions", icon=":material/bar_chart:"),
            st.Page(PAGES / "classify.py", title="Classify", icon=":material/label:"),
            st.Page(PAGES / "segment.py", title="Segment", icon=":material/brush:"),
            st.Page(PAGES / "compare.py", title="Compare", icon=":material/compare:"),
            st.Page(PAGES / "train.py", title="Train", icon=":material/model_training:"),
            st.Page(PAGES / "anatomy.py", title="Anatomy", icon=":material/neurology:"),
        ]
    ).run()
