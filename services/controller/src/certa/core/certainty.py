"""When probes are certain enough to stop a path (ALGORITHMS.md section 2).

Hesitation words are matched as **whole words**, case-insensitively: the reference implementation matches
substrings, so "no" fired inside "not" and "know" and "but" inside "button". A probe that says "Wait" hesitates;
one that says "I know it is 18" does not.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from certa.core.answers import equivalent
from certa.core.types import ProbeRecord

_QUANTITY = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")

HESITATION_WORDS = ("wait", "hold", "but", "okay", "no", "hmm")
_HESITATION = re.compile(r"\b(?:" + "|".join(HESITATION_WORDS) + r")\b", re.IGNORECASE)


def hesitates(probe_text: str) -> bool:
    """True when the probe text contains a hesitation word (whole word, any case)."""
    return _HESITATION.search(probe_text) is not None


@dataclass(frozen=True)
class CertaintyRule:
    """The exit rule.

    Strict (window = 0): the last `threshold` probes are all non-empty, all equivalent and all confident.
    Window (window = w > 0): the latest probe is non-empty and confident, and at least `consistency` of the last
    w probes (w of them must exist) are equivalent to it — the paper's window consistency C_k >= tau.
    """

    threshold: int
    window: int = 0
    consistency: float = 1.0

    def is_certain(self, probes: Sequence[ProbeRecord]) -> bool:
        if self.window > 0:
            return self._window_certain(probes)
        if self.threshold < 1 or len(probes) < self.threshold:
            return False
        recent = probes[-self.threshold :]
        if not all(probe.answer and probe.confident for probe in recent):
            return False
        latest = recent[-1].answer
        return all(equivalent(probe.answer, latest) for probe in recent[:-1])

    def _window_certain(self, probes: Sequence[ProbeRecord]) -> bool:
        if len(probes) < self.window:
            return False
        recent = probes[-self.window :]
        latest = recent[-1]
        if not (latest.answer and latest.confident):
            return False
        agreeing = sum(
            1
            for probe in recent
            if probe is latest or (probe.answer and probe.confident and equivalent(probe.answer, latest.answer))
        )
        return agreeing / self.window >= self.consistency


def quantities(text: str) -> set[str]:
    """The numbers written in `text`, normalised (thousands separators and trailing zeros of decimals dropped)."""
    found = set()
    for match in _QUANTITY.finditer(text):
        value = match.group().replace(",", "")
        if "." in value:
            value = value.rstrip("0").rstrip(".")
        found.add(value)
    return found


def settled(before: str, since: str, answer: str) -> bool:
    """Whether the reasoning written `since` the probes began to agree computed nothing new.

    Certa's guard against the failure mode of probing small models: a probe repeats the latest intermediate number,
    the next probe repeats it too, and the path is stopped while it is still calculating. The path is settled when
    every number written since the first agreeing probe already appeared `before` it (question and path) or is the
    answer itself.
    """
    return quantities(since) <= quantities(before) | quantities(answer)
