"""COCO data: the columnar index, safe image loading, masks and the embedded sample.

Masks (pycocotools) and images (PIL) are imported lazily by their own modules so that opening
an index and counting stays light.
"""

from explorer.coco.index import CocoIndex, fingerprint, open_index

__all__ = ["CocoIndex", "fingerprint", "open_index"]
