"""COCO Explorer: browse COCO datasets, run and train AlexNet / DeepLabV3, compare them.

The library never imports Streamlit (except ``explorer.app.widgets``) and keeps heavy imports (torch,
pycocotools) out of module import time, so ``python -m explorer stats`` starts fast.
"""

__version__ = "0.1.0"
