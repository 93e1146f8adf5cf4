"""COCO data: the columnar index, safe image loading, masks and the embedded sample.

Submodules import what they need (msgspec for the index, pycocotools for masks, PIL for images)
when they are imported, so ``explorer.coco.images`` alone pulls neither msgspec nor pycocotools.
"""

__all__ = ["CocoIndex", "fingerprint", "open_index"]


def __getattr__(name: str):
    if name in __all__:
        from explorer.coco import index

        return getattr(index, name)
    raise AttributeError(f"module 'explorer.coco' has no attribute {name!r}")
