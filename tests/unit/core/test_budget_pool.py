"""The online budget pool's model on plain data: score, refill, ranking, grants, retries, debt, stale waiters."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certa.core.budget_pool import (
    STALE_S,
    BucketState,
    PoolPolicy,
    WaveRequest,
    acquire,
    pool_score,
    refill,
    validate_pool_name,
    view,
    withdraw,
)
from certa.core.errors import InvalidArgument

pytestmark = pytest.mark.unit

POLICY = PoolPolicy(samples_per_second=2.0, burst=8, exploration=0.1)


def wave(request_id: str, samples: int = 4, drawn: int = 4, uncertainty: float = 0.5, **kw: bool) -> WaveRequest:
    return WaveRequest(request_id, samples, drawn, uncertainty, **kw)


def test_score_is_uncertainty_plus_an_exploration_bonus() -> None:
    assert pool_score(0.25, 4, 100, 0.1) == pytest.approx(0.25 + 0.1 * math.sqrt(2 * math.log(100) / 4))
    # T below 2 counts as 2 and n below 1 as 1, so the bonus is defined from the first wave.
    assert pool_score(0.5, 0, 0, 1.0) == pytest.approx(0.5 + math.sqrt(2 * math.log(2)))
    assert pool_score(0.5, 3, 50, 0.0) == 0.5


def test_refill_is_continuous_capped_at_burst_and_ignores_a_clock_going_back() -> None:
    assert refill(1.0, 10.0, 11.5, POLICY) == 4.0
    assert refill(-3.0, 10.0, 11.0, POLICY) == -1.0
    assert refill(6.0, 10.0, 20.0, POLICY) == 8.0
    assert refill(2.0, 10.0, 9.0, POLICY) == 2.0


def test_a_pool_never_seen_starts_full() -> None:
    assert view(BucketState.full(POLICY, 0.0), POLICY, 5.0).level == 8.0


def test_the_most_uncertain_waiter_gets_the_wave_when_the_level_covers_one() -> None:
    state = BucketState(level=0.0, updated_s=0.0)
    state, sure = acquire(state, POLICY, wave("sure", uncertainty=0.1), 0.0)
    state, unsure = acquire(state, POLICY, wave("unsure", uncertainty=0.9), 0.5)
    assert (sure.granted, unsure.granted) == (0, 0)
    # At t=2.5 the level is 5: enough for one wave of 4, which is reserved for the more uncertain waiter.
    state, sure = acquire(state, POLICY, wave("sure", uncertainty=0.1), 2.5)
    assert sure.granted == 0 and sure.level == 5.0
    assert sure.retry_after_s == pytest.approx(1.0)  # (4 + 4 - 5) / 2 = 1.5, clamped to 1
    state, unsure = acquire(state, POLICY, wave("unsure", uncertainty=0.9), 2.5)
    assert (unsure.granted, unsure.retry_after_s, unsure.level, unsure.spent_samples) == (4, 0.0, 1.0, 4)
    assert [request_id for request_id, _ in view(state, POLICY, 2.5).waiting] == ["sure"]


def test_ties_go_to_the_earlier_waiter() -> None:
    state = BucketState(level=0.0, updated_s=0.0)
    state, _ = acquire(state, POLICY, wave("b"), 0.0)
    state, _ = acquire(state, POLICY, wave("a"), 0.1)
    state, _ = acquire(state, POLICY, wave("b"), 1.9)  # asking again keeps its first-seen time
    state, late = acquire(state, POLICY, wave("a"), 2.0)  # level 4: one wave
    assert late.granted == 0
    assert [request_id for request_id, _ in view(state, POLICY, 2.0).waiting] == ["b", "a"]
    _, early = acquire(state, POLICY, wave("b"), 2.0)
    assert early.granted == 4


def test_a_waiter_is_granted_iff_the_cumulative_need_through_it_fits() -> None:
    policy = PoolPolicy(samples_per_second=4.0, burst=20)
    state = BucketState(level=0.0, updated_s=0.0)
    for request_id, uncertainty in [("top", 0.9), ("mid", 0.5), ("low", 0.1)]:
        state, _ = acquire(state, policy, wave(request_id, samples=3, uncertainty=uncertainty), 0.0)
    # At t=1.5 the level is 6: top (3) and mid (3 + 3 = 6) fit, low (9) does not.
    state, low = acquire(state, policy, wave("low", samples=3, uncertainty=0.1), 1.5)
    assert low.granted == 0 and low.retry_after_s == pytest.approx(0.75)  # (9 - 6) / 4
    state, mid = acquire(state, policy, wave("mid", samples=3, uncertainty=0.5), 1.5)
    assert (mid.granted, mid.level) == (3, 3.0)
    state, top = acquire(state, policy, wave("top", samples=3, uncertainty=0.9), 1.5)
    assert (top.granted, top.level) == (3, 0.0)


def test_retry_after_is_clamped_below() -> None:
    state = BucketState(level=3.95, updated_s=0.0)
    _, decision = acquire(state, POLICY, wave("a"), 0.0)
    assert decision.granted == 0 and decision.retry_after_s == 0.05  # (4 - 3.95) / 2 = 0.025


def test_mandatory_waves_go_into_debt_never_wait_and_delay_later_grants() -> None:
    state = BucketState.full(POLICY, 0.0)
    state, first = acquire(state, POLICY, wave("a", samples=6, drawn=0, mandatory=True), 0.0)
    state, second = acquire(state, POLICY, wave("b", samples=6, drawn=0, mandatory=True), 0.0)
    assert (first.granted, second.granted, second.level, second.spent_samples) == (6, 6, -4.0, 12)
    assert view(state, POLICY, 0.0).waiting == ()
    state, more = acquire(state, POLICY, wave("a"), 3.0)  # level -4 + 6 = 2 < 4
    assert more.granted == 0 and more.retry_after_s == pytest.approx(1.0)
    _, more = acquire(state, POLICY, wave("a"), 4.0)
    assert (more.granted, more.level) == (4, 0.0)


def test_stale_waiters_are_dropped_and_withdrawn_ones_leave() -> None:
    state = BucketState(level=0.0, updated_s=0.0)
    state, _ = acquire(state, POLICY, wave("gone", uncertainty=0.9), 0.0)
    state, _ = acquire(state, POLICY, wave("here", uncertainty=0.1), 0.0)
    state, here = acquire(state, POLICY, wave("here", uncertainty=0.1), STALE_S)  # "gone" asked 3 s ago: kept
    assert here.granted == 0
    state, here = acquire(state, POLICY, wave("here", uncertainty=0.1), STALE_S + 0.01)
    assert here.granted == 4
    state, _ = acquire(state, POLICY, wave("c"), 10.0)
    state, _ = acquire(BucketState(level=0.0, updated_s=10.0, waiting=state.waiting), POLICY, wave("c"), 10.0)
    assert [request_id for request_id, _ in view(state, POLICY, 10.0).waiting] == ["c"]
    assert view(withdraw(withdraw(state, "c"), "c"), POLICY, 10.0).waiting == ()


def test_stats_rank_waiters_with_their_scores() -> None:
    state = BucketState(level=0.0, updated_s=0.0, spent_samples=20)
    state, _ = acquire(state, POLICY, wave("a", drawn=2, uncertainty=0.3), 0.0)
    state, _ = acquire(state, POLICY, wave("b", drawn=8, uncertainty=0.4), 0.0)
    stats = view(state, POLICY, 1.0)
    assert stats.level == 2.0 and stats.spent_samples == 20
    assert stats.waiting == (("b", pool_score(0.4, 8, 20, 0.1)), ("a", pool_score(0.3, 2, 20, 0.1)))


def test_policy_and_names_are_validated() -> None:
    POLICY.validate("pools.default")
    for bad, field in [
        (PoolPolicy(0.0, 8), "samples_per_second"),
        (PoolPolicy(math.inf, 8), "samples_per_second"),
        (PoolPolicy(1.0, 0), "burst"),
        (PoolPolicy(1.0, 8, max_wait_s=-1.0), "max_wait_s"),
        (PoolPolicy(1.0, 8, exploration=math.nan), "exploration"),
    ]:
        with pytest.raises(ValueError, match=rf"^pools\.x\.{field}: "):
            bad.validate("pools.x")
    assert validate_pool_name("gsm8k.batch-1_A", "pool") == "gsm8k.batch-1_A"
    for name in ["", "a" * 65, "a/b", "a b", "{x}"]:
        with pytest.raises(InvalidArgument) as raised:
            validate_pool_name(name, "pool")
        assert raised.value.field == "pool"


WAVES = st.builds(
    WaveRequest,
    request_id=st.sampled_from(["r0", "r1", "r2", "r3"]),
    samples=st.integers(1, 6),
    drawn=st.integers(0, 20),
    uncertainty=st.floats(0.0, 1.0),
    mandatory=st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.floats(0.5, 10.0),
    burst=st.integers(1, 12),
    steps=st.lists(st.tuples(st.floats(0.0, 2.0), WAVES), max_size=40),
)
def test_non_mandatory_grants_never_exceed_what_the_bucket_held(
    rate: float, burst: int, steps: list[tuple[float, WaveRequest]]
) -> None:
    policy = PoolPolicy(samples_per_second=rate, burst=burst)
    now = 0.0
    state = BucketState.full(policy, now)
    granted = 0
    for dt, asked in steps:
        now += dt
        before = refill(state.level, state.updated_s, now, policy)
        state, decision = acquire(state, policy, asked, now)
        assert decision.granted in (0, asked.samples)
        if decision.granted and not asked.mandatory:
            assert before >= asked.samples  # the level covered the wave (and everyone ranked above it)
            assert decision.level >= 0
        if not decision.granted:
            assert 0.05 <= decision.retry_after_s <= 1.0 and decision.level == before
        granted += decision.granted
        assert decision.spent_samples == granted
        # Everything granted, mandatory waves included, came out of the burst and the refill since.
        assert granted <= burst + rate * now - decision.level + 1e-6
