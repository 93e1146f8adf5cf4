"""Pictures and figures for people: palette, overlays, thumbnails, plotly figures.

Pure functions of data: no Streamlit here, so all of it is tested with plain pytest."""
