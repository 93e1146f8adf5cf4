"""Evaluation as COCO defines it: pycocotools' ``COCOeval`` numbers, exactly and faster, and the
per-object outcomes behind them. numpy and numba; pycocotools only as the tests' oracle (its
mask API rasterises, as it defines the masks)."""
