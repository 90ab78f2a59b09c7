"""Featurizers for training and for bundles: TF-IDF (scikit-learn → ONNX) and the MiniLM
sentence encoder (safetensors → ONNX, without torch), and the artifacts a bundle ships."""
