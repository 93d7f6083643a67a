"""Token selection with TensorRT-LLM's defaults, on llama.cpp's sampler chain.

TensorRT-LLM semantics kept here:
* no `top_k` and no `top_p` (both 0) is greedy decoding, whatever the temperature; so is `top_k == 1` and (as in
  TensorRT-LLM's PyTorch sampler) `temperature == 0`;
* temperature is applied before the penalties, then top-k, then top-p, then a seeded draw;
* repetition penalty 1.0, presence and frequency penalty 0.0 unless asked; penalties count prompt and output tokens;
* `seed` defaults to 0, so a request without a seed is still reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import llama_cpp as llama

_LLAMA_RANDOM_SEED = 0xFFFFFFFF


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.0
    seed: int = 0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0 or self.top_k == 1 or (self.top_k <= 0 and self.top_p <= 0.0)

    @property
    def penalised(self) -> bool:
        return self.repetition_penalty != 1.0 or self.presence_penalty != 0.0 or self.frequency_penalty != 0.0


def llama_seed(seed: int) -> int:
    """Fold a 64-bit seed into llama.cpp's 32 bits, avoiding the value that means "random"."""
    folded = (seed ^ (seed >> 32)) & 0xFFFFFFFF
    return folded - 1 if folded == _LLAMA_RANDOM_SEED else folded


def build_sampler(params: SamplingParams, window: int) -> llama.llama_sampler_p:
    """A sampler chain for `params`; `window` is how many past tokens the penalties look at."""
    chain = llama.llama_sampler_chain_init(llama.llama_sampler_chain_default_params())

    def add(sampler: llama.llama_sampler_p) -> None:
        llama.llama_sampler_chain_add(chain, sampler)

    if params.greedy:
        if params.penalised:
            add(
                llama.llama_sampler_init_penalties(
                    window, params.repetition_penalty, params.frequency_penalty, params.presence_penalty
                )
            )
        add(llama.llama_sampler_init_greedy())
        return chain
    if params.temperature != 1.0:
        add(llama.llama_sampler_init_temp(params.temperature))
    if params.penalised:
        add(
            llama.llama_sampler_init_penalties(
                window, params.repetition_penalty, params.frequency_penalty, params.presence_penalty
            )
        )
    if params.top_k > 0:
        add(llama.llama_sampler_init_top_k(params.top_k))
    if 0.0 < params.top_p < 1.0:
        add(llama.llama_sampler_init_top_p(params.top_p, 1))
    add(llama.llama_sampler_init_dist(llama_seed(params.seed)))
    return chain


def free_sampler(sampler: llama.llama_sampler_p) -> None:
    llama.llama_sampler_free(sampler)
