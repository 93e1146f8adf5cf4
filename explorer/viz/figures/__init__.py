"""Plotly figures for the pages, one module per subject: pure functions of numbers and typed
results, tested without Streamlit.

``distributions`` (the dataset's counts and histograms), ``predictions`` (a model's top-k,
accuracy, confusion, IoU), ``compare`` (classifier versus segmenter), ``curves`` (training runs),
``anatomy`` (a network's layers), ``object_map`` (the Map); ``layout`` holds what they share.
"""
