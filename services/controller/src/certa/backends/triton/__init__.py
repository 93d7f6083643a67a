"""The Triton Inference Server adapter (TensorRT-LLM's text and token-level model contracts over `ModelStreamInfer`)."""
