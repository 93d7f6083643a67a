"""Certa's local stack: a real Triton server serving a small CPU model with the TensorRT-LLM contract."""
