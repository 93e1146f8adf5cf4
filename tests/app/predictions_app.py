"""The dataset picker and the Predictions section alone (AppTest drops sidebar elements of apps
that call set_page_config on reruns)."""

import streamlit as st

from explorer.app import dataset_picker, predictions_picker

source, index = dataset_picker.dataset_sidebar()
opened = predictions_picker.predictions_sidebar(source)
st.write(f"current: {source.label}; predictions: {', '.join(p.name for p in opened) or 'none'}")
