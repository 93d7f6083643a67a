"""Exit profiles: the ones shipped for the local models (`*.json` here) and the operator's (CERTA_EXIT_PROFILES).

A profile file is the JSON `certa calibrate` writes (`certa.core.exit.profile.profile_to_dict`). The operator's
setting is a file or a directory of `*.json` files; their profiles replace shipped ones of the same name.
CERTA_EXIT_PROFILE names the profile used when a request names none (empty: the conservative default).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from certa.core.errors import InvalidArgument
from certa.core.exit.profile import DEFAULT_PROFILE_NAME, ExitProfile, ProfileBook, profile_from_dict

SETTING = "CERTA_EXIT_PROFILES"


def _parse(text: str, where: str) -> ExitProfile:
    try:
        return profile_from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidArgument(SETTING, f"{where} is not an exit profile: {error!r}") from None


def shipped_profiles() -> list[ExitProfile]:
    folder = resources.files(__package__)
    return [
        _parse(entry.read_text(), f"shipped profile {entry.name}")
        for entry in sorted(folder.iterdir(), key=lambda entry: entry.name)
        if entry.name.endswith(".json")
    ]


def _files(path: str) -> Iterable[Path]:
    location = Path(path)
    if location.is_dir():
        return sorted(location.glob("*.json"))
    if location.is_file():
        return [location]
    raise InvalidArgument(SETTING, f"{path!r} is neither a file nor a directory")


@functools.lru_cache(maxsize=8)
def profile_book(path: str = "", default: str = "") -> ProfileBook:
    """Shipped profiles, then those under `path`; `default` must name one of them (or the conservative default)."""
    profiles = {profile.name: profile for profile in shipped_profiles()}
    if path:
        for file in _files(path):
            profile = _parse(file.read_text(), str(file))
            profiles[profile.name] = profile
    if default and default != DEFAULT_PROFILE_NAME and default not in profiles:
        known = sorted({*profiles, DEFAULT_PROFILE_NAME})
        raise InvalidArgument("CERTA_EXIT_PROFILE", f"unknown exit profile {default!r}; known: {known}")
    return ProfileBook(profiles, default)
