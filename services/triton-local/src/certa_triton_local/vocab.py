"""Loading a GGUF with llama.cpp, its tokenizer and the metadata the contract publishes.

Tokenisation parses special tokens (so a chat-templated prompt's `<|im_start|>` is one token, as with a Hugging
Face tokenizer) and adds BOS/EOS only when the GGUF says the model wants them (`tokenizer.ggml.add_bos_token`).
Detokenisation works on bytes: a token can end inside a UTF-8 character, so text is decoded incrementally.
"""

from __future__ import annotations

import codecs
import ctypes
import sys
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import llama_cpp as llama

_GGML_LOG_LEVEL_WARN = 3
_init_lock = threading.Lock()
_initialised = False


@llama.llama_log_callback
def _forward_warnings(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
    if level in (_GGML_LOG_LEVEL_WARN, _GGML_LOG_LEVEL_WARN + 1):
        sys.stderr.write(text.decode(errors="replace"))


def init_backend() -> None:
    """Initialise llama.cpp once per process and keep only its warnings and errors."""
    global _initialised
    with _init_lock:
        if not _initialised:
            llama.llama_backend_init()
            llama.llama_log_set(_forward_warnings, ctypes.c_void_p(0))
            _initialised = True


def load_model(path: Path, vocab_only: bool = False) -> llama.llama_model_p:
    init_backend()
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    params = llama.llama_model_default_params()
    params.vocab_only = vocab_only
    params.n_gpu_layers = 0
    model = llama.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        raise RuntimeError(f"llama.cpp could not load {path}")
    return model


class Vocab:
    """The tokenizer and metadata of a loaded llama.cpp model."""

    def __init__(self, model: llama.llama_model_p) -> None:
        self._model = model
        self._vocab = llama.llama_model_get_vocab(model)
        self.size = int(llama.llama_vocab_n_tokens(self._vocab))
        self.eos_id = int(llama.llama_vocab_eos(self._vocab))
        pad = int(llama.llama_vocab_pad(self._vocab))
        self.pad_id = pad if pad >= 0 else self.eos_id
        self.bos_id = int(llama.llama_vocab_bos(self._vocab))
        self.add_bos = bool(llama.llama_vocab_get_add_bos(self._vocab))
        self._pieces: dict[int, bytes] = {}
        # A vocab-only load skips the hyper-parameters, so read the training context from the metadata then.
        self.context_length = int(llama.llama_model_n_ctx_train(model)) or int(
            self.metadata(f"{self.metadata('general.architecture')}.context_length") or 0
        )

    @classmethod
    def from_file(cls, path: Path) -> Vocab:
        return cls(load_model(path, vocab_only=True))

    def metadata(self, key: str) -> str | None:
        size = 1 << 16
        while True:
            buffer = ctypes.create_string_buffer(size)
            length = llama.llama_model_meta_val_str(self._model, key.encode(), buffer, size)
            if length < 0:
                return None
            if length < size:
                return buffer.raw[:length].decode("utf-8", errors="replace")
            size = length + 1

    @property
    def chat_template(self) -> str | None:
        return self.metadata("tokenizer.chat_template")

    def tokenize(self, text: str, add_special: bool = True) -> list[int]:
        """Token ids of `text`; `add_special` adds BOS/EOS only where the GGUF asks for them."""
        data = text.encode("utf-8")
        capacity = len(data) + 16
        while True:
            buffer = (llama.llama_token * capacity)()
            count = llama.llama_tokenize(self._vocab, data, len(data), buffer, capacity, add_special, True)
            if count >= 0:
                return list(buffer[:count])
            capacity = -count

    def piece(self, token: int, special: bool = False) -> bytes:
        """The bytes of one token; control tokens are empty unless `special`."""
        key = token if not special else -token - 1
        cached = self._pieces.get(key)
        if cached is None:
            buffer = ctypes.create_string_buffer(256)
            length = llama.llama_token_to_piece(self._vocab, token, buffer, 256, 0, special)
            cached = buffer.raw[: max(length, 0)]
            self._pieces[key] = cached
        return cached

    def is_valid(self, token: int) -> bool:
        return 0 <= token < self.size

    def detokenize(self, tokens: Iterable[int], skip_special_tokens: bool = True) -> str:
        return b"".join(self.piece(t, not skip_special_tokens) for t in tokens).decode("utf-8", errors="replace")


class TextStream:
    """Turns successive token ids into text deltas without splitting a UTF-8 character across deltas."""

    def __init__(self, vocab: Vocab, skip_special_tokens: bool = True) -> None:
        self._vocab = vocab
        self._special = not skip_special_tokens
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, tokens: Sequence[int]) -> str:
        return self._decoder.decode(b"".join(self._vocab.piece(t, self._special) for t in tokens))

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)
