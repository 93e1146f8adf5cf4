"""COCO Explorer, the Streamlit entry point:
`streamlit run app.py [-- --coco ANN --images DIR --predictions [NAME=]RESULTS.json ...]`.

The navigation is published first, before any slow work. A fresh server's first run goes
through Streamlit's legacy ``pages/`` mode (the folder exists), whose navigation of file names
``.streamlit/config.toml`` hides (``client.showSidebarNavigation = false``); this navigation is
shown (the option back on, before ``st.navigation`` reads it).
"""

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).resolve().parent / "pages"

st.set_option("client.showSidebarNavigation", True)
page = st.navigation(
    [
        st.Page(PAGES / "browse.py", title="Browse", icon=":material/photo_library:", default=True),
        st.Page(PAGES / "distributions.py", title="Distributions", icon=":material/bar_chart:"),
        st.Page(PAGES / "classify.py", title="Classify", icon=":material/label:"),
        st.Page(PAGES / "segment.py", title="Segment", icon=":material/brush:"),
        st.Page(PAGES / "compare.py", title="Compare", icon=":material/compare:"),
        st.Page(PAGES / "mistakes.py", title="Mistakes", icon=":material/rule:"),
        st.Page(PAGES / "evaluate.py", title="Evaluate", icon=":material/fact_check:"),
        st.Page(PAGES / "map.py", title="Map", icon=":material/scatter_plot:"),
        st.Page(PAGES / "train.py", title="Train", icon=":material/model_training:"),
        st.Page(PAGES / "anatomy.py", title="Anatomy", icon=":material/neurology:"),
    ]
)
st.set_page_config(page_title="COCO Explorer", page_icon=":material/search:", layout="wide")

# the first visit imports the library and opens the dataset before the page draws its title:
# seconds on a slow machine, so the main area says what is happening meanwhile
with st.spinner("Opening COCO Explorer…"):
    from explorer.app import dataset_picker, page_style, predictions_picker  # noqa: E402

with dataset_picker.app_frame(page.title):
    with st.spinner("Opening the dataset…"):
        source, _ = dataset_picker.dataset_sidebar()
    predictions_picker.predictions_sidebar(source)
    page_style.fold_sidebar_on_narrow_windows()  # before the page: a page may stop the script
    page.run()
