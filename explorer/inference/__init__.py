"""Inference: the batch runner, the prediction cache and what is made from predictions
(classification tables, COCO results, evaluations, the classifier-versus-segmenter report)."""
