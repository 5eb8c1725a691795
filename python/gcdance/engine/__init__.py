"""The inference engine's Python front: ``Generator``, the native engine and ONNX Runtime loader,
model bundles, streaming, int8 quantization, TensorRT options and the benchmark."""
