"""COCO Explorer: browse COCO datasets, run and train AlexNet / DeepLabV3, compare them.

Packages follow the data flow, each importing only from those before it: ``coco`` (COCO files
to a columnar index) → ``models`` → ``inference`` → ``training`` → ``viz`` → ``app`` (the only
Streamlit-aware package); ``cli`` sits on top. docs/ARCHITECTURE.md has the map. Heavy imports
(torch, pycocotools) stay out of module import time, so ``python -m explorer stats`` starts fast.
"""

__version__ = "0.1.0"
