"""Payload fuzzing: arbitrary bytes in a payload or a stored result only ever produce the
documented decode error, `PayloadError` (or `SignatureError`, a `PayloadError`, when a key is
set), and a worker fed such payloads marks them dead and carries on.
"""

from __future__ import annotations

import asyncio
import string
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sitq import MemoryBackend, TaskQueue, TaskStatus, Worker
from sitq.backend import Outcome, TaskRecord
from sitq.errors import PayloadError, SignatureError
from sitq.payload import Codec, FunctionAllowList
from sitq.plugins import get_plugin_manager
from sitq.signing import Signer
from sitq.task import new_task_id

pytestmark = [pytest.mark.needs_memory, pytest.mark.slow]

SERIALIZERS = ("cloudpickle", "pickle", "json", "msgpack")
CODECS = {name: Codec(get_plugin_manager().serializer(name)) for name in SERIALIZERS}
KEY = "fuzzing-key-0123456789"
#: Keeps a decoded import path from importing anything: only this module's ``target`` runs.
ALLOW = FunctionAllowList([f"{__name__}:target"])

#: The number of examples comes from the hypothesis profile (tests/conftest.py): a quick run by
#: default, the full soak with ``pytest -m slow``.
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(string.printable, max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)


def target(*args: object, **kwargs: object) -> str:
    return "ran"


def decodes_or_payload_error(codec: Codec, data: bytes, allow: FunctionAllowList | None) -> None:
    try:
        function, args, kwargs = codec.decode_call(data, allow)
    except PayloadError:
        return
    assert callable(function) and isinstance(args, tuple) and isinstance(kwargs, dict)
    assert all(isinstance(k, str) for k in kwargs)


@FUZZ
@given(data=st.binary(max_size=256), name=st.sampled_from(SERIALIZERS))
def test_random_payload_bytes(data: bytes, name: str) -> None:
    decodes_or_payload_error(CODECS[name], data, ALLOW if name in ("json", "msgpack") else None)


@FUZZ
@given(value=json_like, name=st.sampled_from(("json", "msgpack")))
def test_well_formed_but_wrong_payloads(value: object, name: str) -> None:
    """Valid JSON/msgpack of the wrong shape: never anything but PayloadError."""
    codec = CODECS[name]
    decodes_or_payload_error(codec, codec.serializer.dumps(value), ALLOW)
    decodes_or_payload_error(codec, codec.serializer.dumps([value, [], {}]), ALLOW)
    decodes_or_payload_error(codec, codec.serializer.dumps(["x:y", value, value]), ALLOW)


@FUZZ
@given(data=st.binary(max_size=256), name=st.sampled_from(SERIALIZERS))
def test_random_result_bytes(data: bytes, name: str) -> None:
    try:
        CODECS[name].decode_result(data)
    except PayloadError:
        pass


@FUZZ
@given(data=st.binary(max_size=256))
def test_random_bytes_never_pass_a_signature_check(data: bytes) -> None:
    signer = Signer.from_option(KEY)
    openers: tuple[Callable[[], object], ...] = (
        lambda: signer.open_call("task", "m:f", "pickle", data),
        lambda: signer.open_result("task", data),
    )
    for opened in openers:
        try:
            opened()
        except SignatureError:
            continue
        raise AssertionError(f"{data!r} passed the signature check")


async def run_worker_on(payloads: list[tuple[bytes, str]], key: str | None) -> None:
    backend = MemoryBackend()
    queue = TaskQueue(backend, secret_key=key)
    await queue.connect()
    bad = [
        TaskRecord(id=new_task_id(), function="m:f", payload=data, serializer=name)
        for data, name in payloads
    ]
    await backend.enqueue_many(bad)
    good = await queue.enqueue(target)
    worker = Worker(queue, max_workers=4)
    results = await worker.process_tasks_async([r.id for r in bad] + [good])
    for record, result in zip(bad, results, strict=False):
        assert result.status is TaskStatus.DEAD, (record, result)
        assert result.error and (result.error.startswith(("PayloadError", "SignatureError"))), (
            result.error
        )
    assert results[-1].status is TaskStatus.SUCCEEDED and results[-1].value == "ran"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    payloads=st.lists(
        st.tuples(st.binary(max_size=64), st.sampled_from(SERIALIZERS)), min_size=1, max_size=5
    ),
    signed=st.booleans(),
)
def test_a_worker_fed_random_payloads_goes_on(
    payloads: list[tuple[bytes, str]], signed: bool
) -> None:
    asyncio.run(run_worker_on(payloads, KEY if signed else None))


async def read_planted_result(data: bytes, name: str, key: str | None) -> None:
    backend = MemoryBackend()
    queue = TaskQueue(backend, secret_key=key)
    record = TaskRecord(id=new_task_id(), function="m:f", payload=b"[]", serializer=name)
    await backend.enqueue(record)
    (claimed,) = await backend.claim(worker_id="w", limit=1, lease_seconds=30)
    assert claimed.lease_token
    await backend.finish([Outcome.succeeded(record.id, claimed.lease_token, data)])
    result = await queue.get_result(record.id, timeout=0)
    if key is not None:
        assert result.error and "signed" in result.error, result
        assert result.value is None and not result.is_success
    elif result.error is not None:
        assert "cannot decode the stored result" in result.error
        assert result.value is None and not result.is_success


@settings(max_examples=100, deadline=None)
@given(
    data=st.binary(max_size=128),
    name=st.sampled_from(SERIALIZERS),
    signed=st.booleans(),
)
def test_a_reader_fed_random_results_gets_an_error_not_an_exception(
    data: bytes, name: str, signed: bool
) -> None:
    asyncio.run(read_planted_result(data, name, KEY if signed else None))
