"""The dataset picker alone (AppTest drops sidebar elements of apps that call set_page_config
on reruns)."""

import streamlit as st

from explorer.app import dataset_picker

source, index = dataset_picker.dataset_sidebar()
st.write(f"current: {source.label} ({index.num_images} images)")
