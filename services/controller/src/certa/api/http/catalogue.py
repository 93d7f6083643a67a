"""The models the OpenAI-compatible endpoint offers, each with the strategy a request gets when it names none."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

from google.protobuf import json_format

from certa.api.validation import validate
from certa.config import HttpModel, Settings
from certa.core.errors import InvalidArgument, NotFound
from certa.v1 import reasoning_pb2 as pb


@dataclass(frozen=True)
class OfferedModel:
    name: str
    backend: str
    model: str  # the backend's model; "" is its default
    strategy: pb.Strategy
    context_tokens: int


class ModelCatalogue:
    """Built at start: a model whose strategy does not validate stops the server with the variable named."""

    def __init__(self, settings: Settings) -> None:
        self._models = {entry.name: _offered(entry, settings) for entry in settings.offered_models}

    def __iter__(self) -> Iterator[OfferedModel]:
        return iter(self._models.values())

    def get(self, name: str) -> OfferedModel:
        try:
            return self._models[name]
        except KeyError:
            raise NotFound(f"the model {name!r} does not exist; GET /v1/models lists them") from None


def default_temperature(strategy: pb.Strategy) -> float:
    """A request's temperature when it sets none: greedy for one path (Certa's default), OpenAI's 1.0 for
    strategies that draw several samples (identical greedy samples would be pointless)."""
    return 1.0 if strategy.WhichOneof("kind") in ("majority_vote", "self_consistency") else 0.0


def _offered(entry: HttpModel, settings: Settings) -> OfferedModel:
    field = f"CERTA_HTTP_MODELS[{entry.name!r}].strategy"
    try:
        strategy = json_format.ParseDict(json.loads(entry.strategy_json), pb.Strategy())
    except json_format.ParseError as error:
        raise InvalidArgument(field, f"is not a certa.v1.Strategy: {error}") from None
    try:  # the strategy as a request would carry it, checked against this server's caps
        sampling = pb.SamplingParams(temperature=default_temperature(strategy))
        request = pb.SolveRequest(question="?", strategy=strategy, sampling=sampling, backend=entry.backend)
        validate(request, settings, "check")
    except InvalidArgument as error:
        raise InvalidArgument(field, str(error)) from None
    return OfferedModel(
        name=entry.name,
        backend=entry.backend,
        model=entry.model,
        strategy=strategy,
        context_tokens=entry.context_tokens or settings.max_token_budget,
    )
