"""What a model said, whoever's model: COCO results files (bbox, segm, keypoints), columnar and
validated like ground truth (a bad record is skipped and counted, never fatal)."""
