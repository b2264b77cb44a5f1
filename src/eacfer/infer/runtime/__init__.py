"""Running the face classifier: torch/onnxruntime backends, ONNX sessions and their cache, int8 quantisation, the starter model."""
