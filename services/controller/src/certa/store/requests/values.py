"""Core values as the store keeps them: a request's validated spec, its events and its (partial) result.

One encoding for everything a request stores, so the service speaks core types only and a replica rebuilds a request
exactly as it was accepted (never re-validated against its own caps). Values are frozen dataclasses, enums, tuples
and scalars; the encoding is JSON where a dataclass is an object tagged with its class name under `"_"` and an enum
a `{"_e": name, "v": value}` object. Only classes reachable from the stored roots are known, so a record cannot name
arbitrary code; anything else raises `CorruptState` naming the key.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import types
import typing
from collections.abc import Iterator
from typing import Any, TypeVar

from certa.core.commands import Decision, QuestionFinished
from certa.core.errors import CertaError, CorruptState
from certa.core.report import Resumed, SolveReport, TextDelta
from certa.core.spec import SolveSpec
from certa.core.types import ProbeRecord
from certa.store.requests.codec import failure_of, restore_error
from certa.store.requests.port import Failure

_ROOTS: tuple[type, ...] = (SolveSpec, SolveReport, TextDelta, ProbeRecord, Decision, QuestionFinished, Resumed)
_ERROR = "_x"  # a CertaError inside a value (a batch question's failure), stored as its `Failure`

T = TypeVar("T")


def _reachable(annotation: object) -> Iterator[type]:
    """Dataclasses and enums named by a type annotation (through unions, optionals and tuples)."""
    if isinstance(annotation, type) and (dataclasses.is_dataclass(annotation) or issubclass(annotation, enum.Enum)):
        yield annotation
    for argument in typing.get_args(annotation):
        yield from _reachable(argument)
    if isinstance(annotation, types.UnionType):
        for argument in annotation.__args__:
            yield from _reachable(argument)


def _registry() -> dict[str, type]:
    known: dict[str, type] = {}
    pending = list(_ROOTS)
    while pending:
        cls = pending.pop()
        if known.setdefault(cls.__name__, cls) is not cls:
            raise TypeError(f"two stored classes are named {cls.__name__}: {known[cls.__name__]} and {cls}")
        if dataclasses.is_dataclass(cls):
            for hint in typing.get_type_hints(cls).values():
                pending.extend(found for found in _reachable(hint) if found.__name__ not in known)
    return known


_CLASSES = _registry()


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(item.name for item in dataclasses.fields(cls))


def _plain(value: object) -> Any:
    if isinstance(value, CertaError):
        failure = failure_of(value)
        return {_ERROR: failure.kind, "m": failure.message}
    if isinstance(value, enum.Enum):
        return {"_e": type(value).__name__, "v": value.value}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        encoded = {"_": type(value).__name__}
        for name in _field_names(type(value)):
            encoded[name] = _plain(getattr(value, name))
        return encoded
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"cannot store a {type(value).__name__}")


def _value(plain: Any, label: str) -> Any:
    if isinstance(plain, list):
        return tuple(_value(item, label) for item in plain)
    if not isinstance(plain, dict):
        return plain
    if _ERROR in plain:
        return restore_error(Failure(str(plain[_ERROR]), str(plain.get("m", ""))), None)
    name = plain.get("_") or plain.get("_e")
    cls = _CLASSES.get(str(name))
    if cls is None:
        raise CorruptState(label, f"unknown stored type {name!r}")
    if "_e" in plain:
        return cls(plain["v"])
    fields = {key: _value(item, label) for key, item in plain.items() if key != "_"}
    return cls(**fields)


def encode(value: object) -> bytes:
    """`value` (a stored root: spec, result or event) as bytes."""
    return json.dumps(_plain(value), separators=(",", ":"), ensure_ascii=False).encode()


def decode(raw: bytes, expected: type[T] | types.UnionType, label: str) -> T:
    """The value `encode` wrote, checked to be an `expected`; `CorruptState` naming `label` otherwise."""
    try:
        value = _value(json.loads(raw), label)
    except (ValueError, TypeError, KeyError) as error:
        raise CorruptState(label, f"unreadable stored value: {error}") from None
    if not isinstance(value, expected):
        raise CorruptState(label, f"expected a {expected}, found a {type(value).__name__}")
    return value
