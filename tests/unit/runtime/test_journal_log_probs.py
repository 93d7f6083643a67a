"""A checkpointed probe keeps its log-probs, so a resumed calibrated strategy decides as the original run did."""

from __future__ import annotations

import pytest

from certa.core.types import FinishReason, Outcome, Segment, TokenLogProbs
from certa.runtime.journal import Reply, ReplyKind, decode_reply, encode_reply

pytestmark = pytest.mark.unit


def test_log_probs_and_a_fitted_budget_survive_the_journal() -> None:
    outcome = Outcome(Segment("18}", (49, 56, 125)), 3, FinishReason.STOP, 40, 32,
                      log_probs=TokenLogProbs((-0.01, -0.02, -0.5), (1, 2, 3)), fitted_max_tokens=7)
    reply = decode_reply("test", 0, encode_reply(Reply(ReplyKind.WAIT, 4, outcome)))
    assert reply.outcome == outcome
    plain = Outcome(Segment("x"), 1, FinishReason.LENGTH)
    assert decode_reply("test", 0, encode_reply(Reply(ReplyKind.WAIT, 1, plain))).outcome == plain
