"""The OpenAI-compatible completions adapter (vLLM, SGLang, trtllm-serve, llama.cpp server)."""
