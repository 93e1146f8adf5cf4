"""The "Download COCO…" form alone, against the host in $DL_BASE_URL, into $DL_DEST."""

import os

import streamlit as st

from explorer.app.download import download_form

result = download_form(
    st.container(), base_url=os.environ["DL_BASE_URL"], default_dest=os.environ["DL_DEST"]
)
if result is not None:
    st.write(f"open: {result.annotations} | {result.images}")
