"""Offline tools: dataset loaders, training, sklearn → ONNX conversion, evaluation, publishing."""
