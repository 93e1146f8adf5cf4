"""Inference: models run over a COCO dataset, and what is made of their predictions.

``runner`` (the batch runner: :func:`~explorer.inference.runner.run` runs the model, always) →
``cache`` (:func:`~explorer.inference.cache.predict`: the same run through the prediction cache;
what everything else uses) → ``classification`` (tables, top-1/top-5 scores), ``segmentation``
(COCO results, evaluation) and ``compare`` (classifier versus segmenter). ``metrics`` holds the
pixel metrics they share with training.
"""
