"""The only Streamlit-aware package: cached getters, widgets (dataset and model pickers,
evaluate-on-filter), named session-state keys and URL state. Pages call these and render."""
