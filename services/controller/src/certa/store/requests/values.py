"""Core values as the store keeps them: a request's validated spec, its events and its (partial) result.

One encoding for everything a request stores, so the service speaks core types only and a replica rebuilds a request
exactly as it was accepted (never re-validated against its own caps). Values are frozen dataclasses, enums, tuples,
scalars and errors, and the encoding is compact JSON driven by their type hints:

* a dataclass is the list of its fields in declaration order; where the hint is a union (a strategy, a stop rule,
  an optional value, a stored root) the list starts with the class name, which picks the member;
* an enum is its value, a tuple a list, an error `[kind, message]` (as `certa.store.requests.codec` stores failures).

Fields are only ever appended, with defaults: a reader fills in the fields a shorter (older) list lacks and ignores
the ones a longer (newer) list has. Only classes reachable from the stored roots are known, so a record cannot name
arbitrary code; anything unreadable raises `CorruptState` naming the key. A change of any other kind is a new schema
version (`certa.store.requests.codec`): a record's result is read by `stored_report` in its record's version.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from certa.core.commands import Decision, QuestionFinished
from certa.core.errors import CertaError, CorruptState
from certa.core.report import Resumed, SolveReport, TextDelta
from certa.core.spec import SolveSpec
from certa.core.types import ProbeRecord
from certa.store.requests import schema2
from certa.store.requests.codec import failure_of, restore_error
from certa.store.requests.port import Failure, StoredRequest

_ROOTS: tuple[type, ...] = (SolveSpec, SolveReport, TextDelta, ProbeRecord, Decision, QuestionFinished, Resumed)
_ROOT: Any = typing.Union[_ROOTS]  # noqa: UP007 (a union built from a tuple)
_SCALARS = (str, int, float, bool)

T = TypeVar("T")


@functools.cache
def _fields(cls: type) -> tuple[tuple[str, Any], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((item.name, hints[item.name]) for item in dataclasses.fields(cls) if item.init)


def _members(hint: Any) -> tuple[Any, ...]:
    """The alternatives of a union hint (`X | Y`, `Optional[X]`); a hint that is no union is its only member."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def _walk(hint: Any, known: dict[str, type]) -> None:
    for member in _members(hint):
        if isinstance(member, type) and dataclasses.is_dataclass(member):
            if known.setdefault(member.__name__, member) is not member:
                raise TypeError(f"two stored classes are named {member.__name__}")
            for _, field_hint in _fields(member):
                _walk(field_hint, known)
        elif typing.get_origin(member) is tuple:
            for argument in typing.get_args(member):
                if argument is not Ellipsis:
                    _walk(argument, known)
        elif not (
            member is type(None)
            or member in _SCALARS
            or (isinstance(member, type) and issubclass(member, enum.Enum | CertaError))
        ):
            raise TypeError(f"cannot store values typed {member!r}")


def _registry() -> dict[str, type]:
    known: dict[str, type] = {}
    for root in _ROOTS:
        _walk(root, known)
    return known


_CLASSES = _registry()


def _plain(value: object, hint: Any) -> Any:
    if value is None or (isinstance(value, _SCALARS) and not isinstance(value, enum.Enum)):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, CertaError):
        failure = failure_of(value)
        return [failure.kind, failure.message]
    if isinstance(value, tuple):
        hint = next((member for member in _members(hint) if typing.get_origin(member) is tuple), hint)  # `X | None`
        arguments = typing.get_args(hint) if typing.get_origin(hint) is tuple else ()
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return [_plain(item, arguments[0]) for item in value]
        return [_plain(item, item_hint) for item, item_hint in zip(value, arguments, strict=True)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        encoded = [_plain(getattr(value, name), field_hint) for name, field_hint in _fields(cls)]
        return [cls.__name__, *encoded] if len(_members(hint)) > 1 else encoded
    raise TypeError(f"cannot store a {type(value).__name__}")


def _value(plain: Any, hint: Any, label: str) -> Any:
    members = _members(hint)
    if plain is None and type(None) in members:
        return None
    if len(members) > 1:
        classes = [member for member in members if isinstance(member, type) and dataclasses.is_dataclass(member)]
        if classes and isinstance(plain, list) and plain and isinstance(plain[0], str):
            cls = _CLASSES.get(plain[0])
            if cls not in classes:
                raise CorruptState(label, f"unknown stored type {plain[0]!r} where {hint} was expected")
            return _dataclass(cls, plain[1:], label)
        members = tuple(member for member in members if member is not type(None) and member not in classes)
        if len(members) != 1:
            raise CorruptState(label, f"cannot read {plain!r} as {hint}")
    (hint,) = members
    if typing.get_origin(hint) is tuple:
        arguments = typing.get_args(hint)
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return tuple(_value(item, arguments[0], label) for item in _list(plain, label))
        items = zip(_list(plain, label), arguments, strict=True)
        return tuple(_value(item, item_hint, label) for item, item_hint in items)
    if isinstance(hint, type) and issubclass(hint, CertaError):
        kind, message = _list(plain, label)
        return restore_error(Failure(str(kind), str(message)), None)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(plain)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass(hint, _list(plain, label), label)
    if hint is float and isinstance(plain, int) and not isinstance(plain, bool):
        return float(plain)
    if not isinstance(plain, hint):
        raise CorruptState(label, f"expected a {hint.__name__}, found {plain!r}")
    return plain


def _dataclass(cls: type, items: list[Any], label: str) -> Any:
    fields = _fields(cls)
    # Not strict: an older record lacks the fields appended since (their defaults apply), a newer one has more.
    pairs = zip(fields, items, strict=False)
    return cls(**{name: _value(item, field_hint, label) for (name, field_hint), item in pairs})


def _list(plain: Any, label: str) -> list[Any]:
    if not isinstance(plain, list):
        raise CorruptState(label, f"expected a list, found {plain!r}")
    return plain


def encode(value: object) -> bytes:
    """`value` (a stored root: spec, result or event) as bytes."""
    return json.dumps(_plain(value, _ROOT), separators=(",", ":"), ensure_ascii=False).encode()


def decode(raw: bytes, expected: type[T] | types.UnionType, label: str) -> T:
    """The value `encode` wrote, checked to be an `expected`; `CorruptState` naming `label` otherwise."""
    value = _read(raw, label, lambda plain: _value(plain, _ROOT, label))
    if not isinstance(value, expected):
        raise CorruptState(label, f"expected a {expected}, found a {type(value).__name__}")
    return value


def stored_report(stored: StoredRequest) -> SolveReport | None:
    """The (partial) result a record keeps, read as the record's schema version encoded it; None before a run
    wrote one."""
    if not stored.summary:
        return None
    label = f"{stored.record.key}:meta"
    if stored.schema == schema2.VERSION:
        return _read(stored.summary, label, lambda plain: _schema2_report(plain, label))
    return decode(stored.summary, SolveReport, label)


def _schema2_report(plain: Any, label: str) -> SolveReport:
    tagged = _list(plain, label)
    if tagged[:1] != [SolveReport.__name__]:
        raise CorruptState(label, f"expected a schema {schema2.VERSION} report, found {str(plain)[:40]}")
    report: schema2.Schema2Report = _dataclass(schema2.Schema2Report, tagged[1:], label)
    return report.upgraded()


def _read(raw: bytes, label: str, read: Callable[[Any], T]) -> T:
    try:
        return read(json.loads(raw))
    except (ValueError, TypeError, KeyError) as error:
        raise CorruptState(label, f"unreadable stored value: {error}") from None
