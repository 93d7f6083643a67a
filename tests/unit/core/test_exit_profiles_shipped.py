"""The profiles shipped for the local models match their checked-in recordings and never lose to plain on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from certa.core.exit.compare import profile_policy
from certa.core.exit.profile import check_recording
from certa.core.exit.replay import replay
from certa.exit_profiles import shipped_profiles
from certa.exit_recording import halves, load_recording

pytestmark = pytest.mark.unit

RECORDINGS = Path(__file__).parents[3] / "services" / "bench" / "recordings"


def test_every_shipped_profile_has_its_recording_and_does_not_lose_to_plain_on_its_evaluation_half() -> None:
    profiles = {profile.name: profile for profile in shipped_profiles()}
    assert {"qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"} <= set(profiles)
    for name, profile in profiles.items():
        traces = load_recording(RECORDINGS / f"{name}-gsm8k.jsonl")
        check_recording(traces, profile.model, profile.template)
        _, evaluation = halves(traces)
        for level in profile.levels:
            summary = replay(profile_policy(profile, level.alpha), evaluation)
            assert summary.correct >= summary.plain_correct
            assert summary.tokens <= summary.plain_tokens * 1.01
            assert summary.premature <= 0.05 * summary.exits
