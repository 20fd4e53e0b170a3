"""The cloudpickle serializer's fast path: plain values go through the standard pickler, and
must come out exactly as cloudpickle would have written them."""

from __future__ import annotations

import math
import pickle
import sys
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from sitq.blueprints import SyncBlueprint
from sitq.serializers import CloudpickleSerializer, plain_for_pickle

tasks = SyncBlueprint()


def importable(x: int) -> int:
    """A module-level function: cloudpickle pickles it by reference."""
    return x + 1


@tasks.task()
def declared(x: int) -> int:
    """A declared task at module level: it pickles by reference through its own reduce."""
    return x + 2


class Point:
    """A user class: its instances are never plain (cloudpickle may send the class by value)."""

    def __init__(self, x: int) -> None:
        self.x = x


def _reference(obj: object) -> bytes:
    return bytes(cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


PLAIN: list[Any] = [
    None,
    True,
    12,
    2**80,
    1.5,
    "text",
    b"bytes",
    (),
    (importable, (1, "a"), {"k": [1.0, None]}),
    {"nested": {"a": (1, 2)}, 3: frozenset({1, 2})},
    {1, 2, 3},
    len,
    math.sqrt,
    declared,
    (declared, (1,), {}),
]

NOT_PLAIN = [
    lambda: 1,
    Point(1),
    Point,
    OrderedDict(a=1),
    datetime(2024, 1, 1, tzinfo=timezone.utc),
    list(range(100)),  # over the budget: left to cloudpickle
    (importable, (Point(2),), {}),
    [].append,
]


@pytest.mark.parametrize("obj", PLAIN, ids=repr)
def test_plain_values_pickle_exactly_like_cloudpickle(obj: object) -> None:
    assert plain_for_pickle(obj)
    assert CloudpickleSerializer().dumps(obj) == _reference(obj)


@pytest.mark.parametrize("obj", NOT_PLAIN, ids=lambda o: type(o).__name__)
def test_other_values_go_through_cloudpickle(obj: object) -> None:
    assert not plain_for_pickle(obj)
    assert CloudpickleSerializer().dumps(obj) == _reference(obj)


def test_local_functions_are_pickled_by_value() -> None:
    def local(x: int) -> int:
        return x * 2

    data = CloudpickleSerializer().dumps((local, (3,), {}))
    function, args, _ = pickle.loads(data)
    assert function(*args) == 6
    assert not plain_for_pickle(local)


def test_functions_of_modules_registered_by_value_are_pickled_by_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "byvalue_mod.py").write_text("def f():\n    return 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import byvalue_mod  # type: ignore[import-not-found]

    assert plain_for_pickle(byvalue_mod.f)
    cloudpickle.register_pickle_by_value(byvalue_mod)
    try:
        assert not plain_for_pickle(byvalue_mod.f)
        data = CloudpickleSerializer().dumps(byvalue_mod.f)
        assert data == _reference(byvalue_mod.f)
        del sys.modules["byvalue_mod"]  # the worker side cannot import it
        assert pickle.loads(data)() == 42
    finally:
        cloudpickle.unregister_pickle_by_value(byvalue_mod)
        sys.modules.pop("byvalue_mod", None)


def test_declared_tasks_pickle_by_reference_on_the_fast_path() -> None:
    data = CloudpickleSerializer().dumps((declared, (1,), {}))
    assert pickle.loads(data)[0] is declared


def test_a_task_declared_in_a_function_is_left_to_cloudpickle() -> None:
    @tasks.task()
    def local(x: int) -> int:
        return x * 3

    assert not plain_for_pickle(local)
    function, args, _ = pickle.loads(CloudpickleSerializer().dumps((local, (2,), {})))
    assert function(*args) == 6
