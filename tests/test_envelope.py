"""`Envelope`: calls and results sealed and opened again, with each built-in serializer,
signed and unsigned, within the size limit; and the record → `Task`/`Result` mapping.

No backend: the envelope turns values into the bytes a record stores, and back.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from sitq import TaskStatus
from sitq.backend import Outcome, TaskRecord
from sitq.envelope import Envelope
from sitq.errors import (
    ConfigurationError,
    PayloadError,
    SerializationError,
    SerializerNotFound,
    SignatureError,
)
from sitq.payload import FunctionAllowList
from sitq.plugins import get_plugin_manager
from sitq.signing import HEADER
from sitq.task import function_name, new_task_id, result_from_record, task_from_record

BUILT_IN = ("cloudpickle", "pickle", "msgpack", "json")
KEY = "a-long-enough-secret-key-for-tests"
VALUE = {"total": 6, "items": [1, 2, 3], "label": "sum", "none": None}


def combine(numbers: list[int], label: str, *, scale: int = 1) -> dict[str, Any]:
    """A data-only task: every serializer carries its call, by value or by import path."""
    return {"label": label, "total": sum(numbers) * scale}


def envelope(serializer: str = "cloudpickle", **options: Any) -> Envelope:
    return Envelope.from_options(get_plugin_manager(), serializer=serializer, **options)


def sealed_record(env: Envelope, *args: Any, **kwargs: Any) -> TaskRecord:
    """The record a queue stores for ``combine(*args, **kwargs)``."""
    task_id, name = new_task_id(), function_name(combine)
    payload = env.seal_call(task_id, name, combine, args, kwargs)
    return TaskRecord(id=task_id, function=name, payload=payload, serializer=env.serializer)


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
@pytest.mark.parametrize("serializer", BUILT_IN)
def test_calls_and_results_round_trip(serializer: str, signed: bool) -> None:
    env = envelope(serializer, secret_key=KEY if signed else None)
    record = sealed_record(env, [1, 2, 3], "sum", scale=2)
    assert record.payload.startswith(HEADER) is signed
    assert record.serializer == serializer

    opened = env.open_call(record)
    assert opened.function is combine
    assert opened.args[1] == "sum" and list(opened.args[0]) == [1, 2, 3]
    assert opened.kwargs == {"scale": 2}
    assert opened.codec is env.codec_for(serializer)
    assert opened.function(*opened.args, **opened.kwargs) == {"label": "sum", "total": 12}

    sealed = env.seal_result(record, VALUE)
    assert sealed.startswith(HEADER) is signed
    assert env.open_result(record, sealed) == VALUE
    assert env.open_result(record, None) is None  # a task that stored no result


def test_the_body_is_what_the_codec_decodes_and_an_allow_list_is_applied() -> None:
    env = envelope("json", secret_key=KEY)
    record = sealed_record(env, [1], "x")
    opened = env.open_call(record, FunctionAllowList([f"{combine.__module__}:*"]))
    assert opened.codec.decode_call(opened.body)[0] is combine  # what a process executor sends
    with pytest.raises(PayloadError, match="not in this worker's allowed_functions"):
        env.open_call(record, FunctionAllowList(["elsewhere:*"]))


def test_signed_and_unsigned_do_not_mix() -> None:
    signed, unsigned = envelope(secret_key=KEY), envelope()
    record = sealed_record(signed, [1], "x")
    with pytest.raises(SignatureError, match="no secret key to check it"):
        unsigned.open_call(record)
    with pytest.raises(SignatureError, match="is not signed"):
        signed.open_call(sealed_record(unsigned, [1], "x"))
    result = signed.seal_result(record, 5)
    moved = TaskRecord(id=new_task_id(), function=record.function, payload=b"", serializer="x")
    with pytest.raises(SignatureError, match="bad signature"):
        signed.open_result(moved, result)  # a result is signed over its task id


def test_an_unknown_serializer_is_a_lookup_error() -> None:
    record = sealed_record(envelope(), [1], "x")
    record.serializer = "yaml"
    with pytest.raises(SerializerNotFound, match="no serializer named 'yaml'"):
        envelope().open_call(record)


def test_the_size_limit_holds_for_calls_and_results() -> None:
    env = envelope(max_payload_bytes=1000)
    with pytest.raises(ConfigurationError) as call:
        sealed_record(env, [1], "x" * 2000)
    assert f"the call to {function_name(combine)} encodes to" in str(call.value)
    assert "over this queue's max_payload_bytes (1,000)" in str(call.value)
    record = sealed_record(env, [1], "x" * 500)
    assert env.seal_result(record, "y" * 500)
    with pytest.raises(SerializationError, match=r"over the queue's max_payload_bytes \(1,000\)"):
        env.seal_result(record, "y" * 2000)
    assert sealed_record(envelope(max_payload_bytes=None), [1], "x" * 100_000)


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "64"])
def test_a_bad_limit_is_refused(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="max_payload_bytes must be an int >= 1 or None"):
        envelope(max_payload_bytes=bad)


def test_a_workers_serializer_writes_results_only_where_they_read_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue = envelope("cloudpickle")
    pickle_writer = queue.for_worker(serializer="pickle")
    pickle_writer.check_compatible()
    assert pickle_writer.result_codec("cloudpickle").name == "pickle"

    json_writer = queue.for_worker(serializer="json", logger=logging.getLogger("test.envelope"))
    with pytest.raises(ConfigurationError, match="serializer='json' writes results"):
        json_writer.check_compatible()
    with caplog.at_level(logging.WARNING, logger="test.envelope"):
        for _ in range(2):
            assert json_writer.result_codec("cloudpickle").name == "cloudpickle"  # its own
    assert caplog.text.count("stored with 'cloudpickle' instead") == 1  # said once

    with pytest.raises(ConfigurationError, match="deserializer='json' cannot read"):
        queue.for_worker(deserializer="json").check_compatible()
    with pytest.raises(ConfigurationError, match="has no dumps"):
        queue.for_worker(serializer=42)


def test_a_worker_envelope_opens_what_the_queue_sealed() -> None:
    queue = envelope("msgpack", secret_key=KEY, max_payload_bytes=10_000)
    worker = queue.for_worker(deserializer="msgpack", serializer="msgpack")
    assert worker.max_payload_bytes == 10_000 and worker.signer is queue.signer
    record = sealed_record(queue, [4], "w")
    assert worker.open_call(record).function is combine
    assert queue.open_result(record, worker.seal_result(record, VALUE)) == VALUE
    other_key = queue.for_worker(secret_key="another-long-enough-secret-key")
    with pytest.raises(SignatureError, match="bad signature"):
        other_key.open_call(record)


def test_records_map_to_tasks_and_results() -> None:
    record = TaskRecord(
        id="t1",
        function=function_name(combine),
        payload=b"?",
        serializer="json",
        queue="mail",
        priority=3,
        available_at=100.0,
        status=TaskStatus.SUCCEEDED,
        attempts=2,
        created_at=90.0,
        started_at=95.0,
        finished_at=99.0,
        worker_id="w-old",
    )
    stored = task_from_record(record)  # the payload could not be decoded: its path, no args
    assert stored.function == function_name(combine) and stored.args == ()
    assert stored.status is TaskStatus.SUCCEEDED and stored.worker_id == "w-old"
    assert stored.queue == "mail" and stored.priority == 3
    assert stored.finished_at is not None and stored.finished_at.timestamp() == 99.0

    running = task_from_record(record, combine, ([1], "x"), {"scale": 1}, worker_id="w-now")
    assert running.function is combine and running.kwargs == {"scale": 1}
    assert running.status is TaskStatus.RUNNING and running.worker_id == "w-now"
    assert running.finished_at is None and running.attempts == 2

    result = result_from_record(record, 42)
    assert result.value == 42 and result.is_success and result.duration == 4.0
    unreadable = result_from_record(record, error="cannot decode")
    assert unreadable.status is TaskStatus.SUCCEEDED and not unreadable.is_success

    outcome = Outcome.failed("t1", "lease", "ValueError: no", "Traceback ...")
    outcome.finished_at = 120.0
    failed = result_from_record(record, outcome=outcome)
    assert failed.status is TaskStatus.FAILED and failed.error == "ValueError: no"
    assert failed.traceback == "Traceback ..." and failed.is_error
    assert failed.finished_at is not None and failed.finished_at.timestamp() == 120.0
