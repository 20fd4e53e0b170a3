"""`make_record`: build `TaskRecord` values for backend tests."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from ..backend import TaskRecord
from ..task import DEFAULT_QUEUE, new_task_id

_payloads = itertools.count()


def make_record(
    *,
    id: str | None = None,
    function: str = "tests.tasks:work",
    payload: bytes | None = None,
    serializer: str = "json",
    queue: str = DEFAULT_QUEUE,
    priority: int = 0,
    available_at: float = 0.0,
    max_retries: int | None = None,
    timeout: float | None = None,
    dedupe_key: str | None = None,
    created_at: float = 0.0,
    meta: Mapping[str, Any] | None = None,
    workflow_id: str | None = None,
    parents: Sequence[str] = (),
    allow_failure: bool = False,
) -> TaskRecord:
    """A pending record with a fresh id and a distinct payload; override any field."""
    return TaskRecord(
        id=new_task_id() if id is None else id,
        function=function,
        payload=f"[{next(_payloads)}]".encode() if payload is None else payload,
        serializer=serializer,
        queue=queue,
        priority=priority,
        available_at=available_at,
        max_retries=max_retries,
        timeout=timeout,
        dedupe_key=dedupe_key,
        created_at=created_at,
        meta={} if meta is None else dict(meta),
        workflow_id=workflow_id,
        parents=tuple(parents),
        allow_failure=allow_failure,
    )
