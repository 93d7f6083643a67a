"""Policies side by side on a recording: the rows of `certa replay-exit` and of the exit bench.

The reference presets are replayed as their fixed rule (the last k probes agree, none hesitates) on the recorded
probes at their chunk size. Two differences from a live run, both in the presets' favour: the recording's probes
are greedy (the reference samples them at temperature 0.6), and a live preset also pays for the chunk it started
beside its last probe and cancelled on exit, which a replay cannot know and does not count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from certa.core.exit.policy import ExitPolicy
from certa.core.exit.profile import ExitProfile
from certa.core.exit.replay import ReplaySummary, replay
from certa.core.exit.trace import PathTrace

REFERENCE_POLICIES: dict[str, ExitPolicy] = {
    "mid": ExitPolicy(agreement=3, require_candidate=False, every_tokens=64),
    "high": ExitPolicy(agreement=2, require_candidate=False, every_tokens=64),
    "crazy": ExitPolicy(agreement=2, require_candidate=False, every_tokens=32),
}
"""The reference presets' exit rules (ALGORITHMS.md section 2) as policies over a recording probed every 32 tokens."""


@dataclass(frozen=True)
class Row:
    name: str
    policy: str
    summary: ReplaySummary


def profile_policy(profile: ExitProfile, alpha: float, log_probs: bool = True) -> ExitPolicy | None:
    """The policy `profile` uses at risk `alpha` (None: never exit)."""
    level = profile.level(alpha)
    if level is None:
        return None
    return level.confidence.policy if log_probs else level.agreement.policy


def compare(traces: Sequence[PathTrace], policies: Sequence[tuple[str, ExitPolicy | None]]) -> list[Row]:
    """Plain first, then each named policy, replayed on `traces`."""
    rows = [Row("plain", "no probes", replay(None, traces))]
    for name, policy in policies:
        rows.append(Row(name, policy.describe() if policy else "never exit (no probes)", replay(policy, traces)))
    return rows


def format_rows(rows: Sequence[Row]) -> str:
    header = (f"{'policy':<14s} {'n':>3s} {'acc':>6s} {'tokens':>7s} {'vs plain':>8s} {'exits':>5s} "
              f"{'premat.':>7s} {'wrong':>5s} {'wall s':>7s}  exit positions")
    lines = [header, "-" * len(header)]
    for row in rows:
        s = row.summary
        positions = ",".join(str(p) for p in s.exit_positions[:8]) + ("..." if len(s.exit_positions) > 8 else "")
        change = s.tokens / s.plain_tokens - 1 if s.plain_tokens else 0.0
        wall = "-" if s.wall_s is None else f"{s.wall_s:.1f}"
        lines.append(
            f"{row.name:<14s} {s.questions:>3d} {s.accuracy:>6.1%} {s.tokens:>7d} {change:>+8.1%} {s.exits:>5d} "
            f"{s.premature:>7d} {s.wrong:>5d} {wall:>7s}  {positions}"
        )
    lines.append("tokens = path + probe tokens; vs plain = change against the unstopped paths; premature = exit "
                 "answer differs from the unstopped path's; wrong = a right unstopped answer turned wrong; wall s = "
                 "the recorded calls' wall time the policy would spend, one call after the other (- : no timings)")
    return "\n".join(lines)
