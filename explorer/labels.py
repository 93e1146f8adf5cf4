"""Label spaces and the maps between them: the one place that knows each.

Pascal VOC: torchvision's DeepLabV3 ``COCO_WITH_VOC_LABELS_V1`` weights predict 21 labels,
background plus the 20 VOC classes, all of which are COCO categories. The COCO category id of
VOC label ``i`` (1..20) is ``VOC_COCO_IDS[i - 1]`` (the list of torchvision's segmentation
reference, ``references/segmentation/coco_utils.py``).
"""

from __future__ import annotations

VOC_NAMES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
             "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
             "sheep", "sofa", "train", "tvmonitor")

# COCO ids of VOC labels 1..20: airplane, bicycle, bird, boat, bottle, bus, car, cat, chair, cow,
# dining table, dog, horse, motorcycle, person, potted plant, sheep, couch, train, tv
VOC_COCO_IDS = (5, 2, 16, 9, 44, 6, 3, 17, 62, 21, 67, 18, 19, 4, 1, 64, 20, 63, 7, 72)
