"""The generated model repository and the word-list format, without starting a server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from certa_triton_local import contract, wordlists
from certa_triton_local.repository import EngineOptions, pbtxt_string, write_repository

pytestmark = pytest.mark.unit


def test_pbtxt_strings_escape_quotes_newlines_and_non_ascii() -> None:
    assert pbtxt_string('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'
    assert pbtxt_string("é") == '"\\303\\251"'


def test_word_lists_round_trip_in_tensorrt_llm_format() -> None:
    array = wordlists.encode([[5, 6], [7]])
    assert array.tolist() == [[5, 6, 7], [2, 3, -1]]
    assert wordlists.decode(array) == [[5, 6], [7]]
    batch = wordlists.encode_batch([[[1]], [[2, 3], [4]]])
    assert batch.shape == (2, 2, 3)
    assert wordlists.decode(batch[0]) == [[1]]
    assert wordlists.encode([]).shape == (2, 0)
    with pytest.raises(wordlists.WordListError):
        wordlists.decode(np.array([[1, 2], [5, -1]], dtype=np.int32))


def test_repository_has_every_model_with_the_contract(tmp_path: Path, smollm2_gguf: Path) -> None:
    out = write_repository(tmp_path / "models", smollm2_gguf, "smollm2-135m", EngineOptions(kv_cache_cells=4096))
    for name in contract.ALL_MODELS:
        config = (out / name / "config.pbtxt").read_text()
        assert f'name: "{name}"' in config
        assert f"max_batch_size: {contract.MAX_BATCH_SIZE}" in config
        assert ("decoupled: true" in config) == contract.CONTRACTS[name].decoupled
        assert (out / name / "1" / "model.py").exists()
    text = (out / "ensemble" / "config.pbtxt").read_text()
    assert 'key: "chat_template"' in text
    # one sequence's share of the cells (16 slots): what the engine holds per request, as the controller must know
    assert 'key: "max_context"\n  value: { string_value: "256" }' in text
