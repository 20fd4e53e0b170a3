"""`sitq.flow_claim.admit`, the decision of the SQL backends' limited claims, on random
windows of candidates: it never passes a limit, never takes a token it has not got, and leaves
no candidate behind that it could have taken (no head-of-line blocking)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from sitq.flow_claim import Candidate, KeyRecord, Rules, admit
from sitq.flow_control import LimitRule, refill

NOW = 1000.0
RULES = Rules(
    [
        LimitRule("solo", concurrency=1),
        LimitRule("api", rate=2.0, burst=3.0),
        LimitRule("tenant:*", concurrency=2),
        LimitRule("tenant:big", concurrency=4, rate=1.0),
    ]
)
KEYS = ["solo", "api", "tenant:1", "tenant:2", "tenant:big", "free"]

candidates_st = st.lists(
    st.tuples(st.integers(0, 2), st.lists(st.sampled_from(KEYS), max_size=3, unique=True)),
    max_size=30,
)
records_st = st.dictionaries(
    st.sampled_from(KEYS),
    st.builds(
        KeyRecord,
        st.floats(0.0, 4.0),
        st.floats(NOW - 5.0, NOW),
        st.one_of(st.none(), st.floats(NOW - 5.0, NOW)),
    ),
)
running_st = st.dictionaries(st.sampled_from(KEYS), st.integers(0, 3))


def _admissible(c: Candidate[int], held: Counter[str], records: dict[str, KeyRecord]) -> bool:
    for key in RULES.ruled(c.keys):
        rule = RULES.of(key)
        assert rule is not None
        if rule.concurrency is not None and held[key] >= rule.concurrency:
            return False
        if rule.rate is not None:
            rec = records.get(key)
            tokens = (
                rule.bucket_size if rec is None else refill(rec.tokens, rec.refilled_at, NOW, rule)
            )
            if tokens < 1.0:
                return False
    return True


@given(candidates_st, records_st, running_st, st.integers(1, 12))
def test_admit_keeps_every_limit_and_blocks_nothing_it_could_take(
    raw: list[tuple[int, list[str]]],
    records: dict[str, KeyRecord],
    running: dict[str, int],
    limit: int,
) -> None:
    candidates = [Candidate(i, priority, tuple(keys)) for i, (priority, keys) in enumerate(raw)]
    done = admit(candidates, RULES, records, running, NOW, limit)
    assert len(done.taken) <= limit
    assert len({c.ref for c in done.taken}) == len(done.taken)
    held = Counter(running)
    for c in done.taken:
        held.update(RULES.ruled(c.keys))
    for key, count in held.items():
        rule = RULES.of(key)
        if rule is not None and rule.concurrency is not None and count > running.get(key, 0):
            assert count <= rule.concurrency, f"{key} runs {count} tasks"
    for key, rec in done.records.items():
        assert rec.tokens >= 0.0, f"{key} went below an empty bucket"
        assert rec.last_served_at == NOW
    after = {**records, **done.records}
    if len(done.taken) < limit:
        taken = {c.ref for c in done.taken}
        left = [c for c in candidates if c.ref not in taken]
        assert not [c for c in left if _admissible(c, held, after)], "a takeable task was left"


def test_busy_keys_alternate_within_one_claim() -> None:
    """Two keys with many tasks each, the first enqueued first: one claim takes them in turn."""
    busy = [Candidate(i, 0, ("tenant:1",)) for i in range(4)]
    quiet = [Candidate(10 + i, 0, ("tenant:2",)) for i in range(4)]
    rules = Rules([LimitRule("tenant:*", concurrency=10)])
    done = admit(busy + quiet, rules, {}, {}, NOW, 4)
    assert [c.ref for c in done.taken] == [0, 10, 1, 11]
