"""Inference: the ``inference`` node and its backends (onnxruntime, torch, tensorrt), one file each."""
