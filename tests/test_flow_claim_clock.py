"""A claim's clock may be behind the stored bucket: it read the time before it waited for the
store's lock while a later claim committed. Found by the fleet acceptance test
(test_flow_control_fleet.py): 64 starts of a 50/s key (burst 10) in one second, because
such a claim moved the bucket's refill time back and the next claim was refilled for the
same time twice."""

from __future__ import annotations

from sitq.flow_claim import Candidate, KeyRecord, Rules, admit
from sitq.flow_control import LimitRule

RULES = Rules([LimitRule("stripe", rate=10.0, burst=1.0)])


def take(record: KeyRecord, now: float) -> KeyRecord | None:
    """The key's record after a claim at ``now`` of one task holding it, or None if the
    claim refused the task."""
    done = admit([Candidate("t", 0, ("stripe",))], RULES, {"stripe": record}, {}, now, 1)
    return done.records["stripe"] if done.taken else None


def test_a_claim_behind_the_bucket_does_not_move_its_refill_time_back() -> None:
    after = take(KeyRecord(tokens=1.0, refilled_at=100.0), now=99.9)
    assert after is not None and after.refilled_at == 100.0 and after.tokens == 0.0
    # 0.05 s after the last refill: half a token, so the next claim must wait
    assert take(after, now=100.05) is None
    assert take(after, now=100.2) is not None
