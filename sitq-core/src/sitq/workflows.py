"""Workflows: ``chain``, ``group`` and ``chord`` of declared tasks' signatures, enqueued in
one batch, and the handles that follow them (`AsyncWorkflow`, `Workflow`).

```python
wf = await queue.enqueue(sitq.chain(fetch.s(url), parse.s(), store.s()))
wf = await queue.enqueue(sitq.group(resize.s(p) for p in paths))
wf = await queue.enqueue(sitq.chord((resize.s(p) for p in paths), summarize.s()))
await wf.result(timeout=60)
```

A workflow becomes tasks whose ``parents`` are the members they wait for; the store keeps
them ``waiting`` and releases each one in the transaction that ends its last parent
(`sitq.workflow_state`). A chain step receives the previous step's result as its first
argument (the list of results after a group); a chord's callback receives the list of its
header's results, in order; ``task.si(...)`` takes nothing from its parents.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

from .errors import ConfigurationError
from .handles import _Handle, value_of
from .parent_results import ParentFailed
from .task import FINAL_STATUSES, Task, TaskStatus, new_task_id
from .workflow_state import FAILED_PARENT_STATUSES, PASS_RESULTS_HEADER, WorkflowSummary

if TYPE_CHECKING:
    from .queue import TaskQueue
    from .sync import SyncTaskQueue
    from .tasks import DeclaredTask, TaskOptions


class Signature:
    """One call of a declared task, to run as a workflow member: ``task.s(*args, **kwargs)``.

    ``immutable`` (``task.si(...)``): the call takes nothing from its parents.
    """

    __slots__ = ("args", "declared", "immutable", "kwargs", "task_options")

    def __init__(
        self,
        declared: DeclaredTask[Any, Any],
        task_options: TaskOptions,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        *,
        immutable: bool = False,
    ) -> None:
        self.declared = declared
        self.task_options = task_options
        self.args = args
        self.kwargs = dict(kwargs)
        self.immutable = immutable
        if task_options.dedupe_key is not None:
            raise ConfigurationError(
                f"{declared.name}: a workflow member cannot have a dedupe_key (a duplicate "
                "would leave its children waiting for a task that was never stored)"
            )

    def options(self, **changes: Any) -> Signature:
        """A copy stored with these options changed (see ``task.options``)."""
        return Signature(
            self.declared,
            self.task_options.with_changes(changes),
            self.args,
            self.kwargs,
            immutable=self.immutable,
        )

    def __repr__(self) -> str:
        return f"<Signature {self.declared.name}{'(immutable)' if self.immutable else ''}>"


@dataclass(frozen=True)
class Chain:
    """Steps run one after another, each receiving the previous one's result."""

    steps: tuple[Canvas, ...]


@dataclass(frozen=True)
class Group:
    """Members run side by side; their results form a list, in order."""

    members: tuple[Canvas, ...]


@dataclass(frozen=True)
class Chord:
    """A group (the header) and a callback that receives the list of its results, once
    every member has ended."""

    header: Group
    callback: Canvas


#: What `TaskQueue.enqueue` takes as a workflow.
Canvas = Union[Signature, Chain, Group, Chord]  # noqa: UP007 (a runtime alias for isinstance)


#: The classes of `Canvas`, for ``isinstance``.
CANVAS_TYPES = (Signature, Chain, Group, Chord)


def is_canvas(value: object) -> bool:
    """True if ``value`` is a signature, chain, group or chord."""
    return isinstance(value, CANVAS_TYPES)


def chain(*steps: Canvas | Iterable[Canvas]) -> Chain:
    """Steps run in order: ``chain(fetch.s(url), parse.s(), store.s())``. Each step receives
    the previous one's result as its first argument (the list of results after a group)."""
    found = _canvases("chain", steps)
    if not found:
        raise ConfigurationError("chain() needs at least one step: chain(a.s(), b.s())")
    return Chain(found)


def group(*members: Canvas | Iterable[Canvas]) -> Group:
    """Members run side by side: ``group(resize.s(p) for p in paths)``; the group's result
    is the list of theirs, in order (a member that is itself a group adds its results to
    the list one by one)."""
    return Group(_canvases("group", members))


def chord(header: Group | Iterable[Canvas], callback: Canvas) -> Chord:
    """``callback`` runs once every member of ``header`` has ended, receiving the list of
    their results in order: ``chord((resize.s(p) for p in paths), summarize.s())``."""
    if not is_canvas(callback):
        raise ConfigurationError(
            f"chord's callback must be a signature such as summarize.s(), got {callback!r}"
        )
    return Chord(header if isinstance(header, Group) else group(header), callback)


def _canvases(what: str, items: Sequence[Canvas | Iterable[Canvas]]) -> tuple[Canvas, ...]:
    """``items``, or the one iterable given instead of them, checked."""
    if len(items) == 1 and not is_canvas(items[0]):
        items = tuple(items[0])  # type: ignore[arg-type]
    for item in items:
        if not is_canvas(item):
            raise ConfigurationError(
                f"{what}() takes signatures (task.s(...)), chains, groups and chords, got "
                f"{item!r}; write task.s(args) instead of task(args)"
            )
    return tuple(items)  # type: ignore[arg-type]


# -- planning: a canvas as tasks with parents ---------------------------------------------------


@dataclass
class Plan:
    """The tasks of one workflow, parents first, and where its result comes from."""

    workflow_id: str
    tasks: list[Task] = field(default_factory=list)
    #: the members whose results are the workflow's result
    exits: list[str] = field(default_factory=list)
    #: the result is the list of the exits' results (a group or chord header last)
    many: bool = False


def plan(canvas: Canvas) -> Plan:
    """The tasks a workflow is stored as (`ConfigurationError` for an empty one)."""
    found = Plan(new_task_id())
    found.exits, found.many = _place(canvas, (), None, found)
    if not found.tasks:
        raise ConfigurationError("this workflow has no task to run (an empty group?)")
    return found


def _place(
    canvas: Canvas, parents: tuple[str, ...], mode: str | None, into: Plan
) -> tuple[list[str], bool]:
    """Add ``canvas``'s tasks to ``into``, its first ones waiting for ``parents`` and
    receiving their results as ``mode`` says; return its last members and whether its
    result is their list."""
    if isinstance(canvas, Signature):
        into.tasks.append(_member(canvas, parents, mode, into.workflow_id))
        return [into.tasks[-1].id], False
    if isinstance(canvas, Chain):
        exits, many = list(parents), mode == "list"
        for step in canvas.steps:
            exits, many = _place(step, tuple(exits), "list" if many else "first", into)
        return exits, many
    if isinstance(canvas, Chord):
        return _place(Chain((canvas.header, canvas.callback)), parents, mode, into)
    exits = []
    for member in canvas.members:
        exits.extend(_place(member, parents, mode, into)[0])
    return exits, True


def _member(
    signature: Signature, parents: tuple[str, ...], mode: str | None, workflow_id: str
) -> Task:
    """The task of one signature in a workflow."""
    fields = signature.task_options.task_fields()
    meta = dict(fields.pop("meta"))
    extra_parents = fields.pop("parents")  # depends_on, beside the workflow's own
    if parents:  # the workflow decides what it receives
        meta.pop(PASS_RESULTS_HEADER, None)
        if mode is not None and not signature.immutable:
            meta[PASS_RESULTS_HEADER] = mode
    return Task(
        signature.declared,
        signature.args,
        signature.kwargs,
        **fields,
        meta=meta,
        parents=(*parents, *extra_parents),
        workflow_id=workflow_id,
    )


def parent_ids(items: object) -> tuple[str, ...]:
    """The task ids ``depends_on=`` names: ids, task handles, or workflow handles (their
    last members)."""
    if isinstance(items, (str, _Handle, _WorkflowHandle)) or not isinstance(items, Iterable):
        items = [items]
    found: list[str] = []
    for item in items:
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, _Handle):
            found.append(item.id)
        elif isinstance(item, _WorkflowHandle):
            found.extend(item.exits)
        else:
            raise ConfigurationError(
                f"depends_on takes task ids, task handles and workflow handles, got {item!r}"
            )
    return tuple(found)


# -- handles ------------------------------------------------------------------------------------


class _WorkflowHandle:
    """What both flavours hold: the workflow id, its members and where its result is."""

    id: str
    task_ids: tuple[str, ...]
    exits: tuple[str, ...]
    many: bool

    def __init__(self, found: Plan | _WorkflowHandle) -> None:
        """``found``: the plan it was stored from, or another handle on it."""
        if isinstance(found, Plan):
            workflow_id, task_ids = found.workflow_id, tuple(t.id for t in found.tasks)
        else:
            workflow_id, task_ids = found.id, found.task_ids
        #: The workflow id (``TaskRecord.workflow_id`` of its members; ``sitq workflows``).
        self.id = workflow_id
        #: The ids of its members, parents first.
        self.task_ids = task_ids
        #: The ids of the members whose results make its result.
        self.exits = tuple(found.exits)
        #: Its result is the list of the exits' results (else the one exit's result).
        self.many = found.many

    def _value(self, values: list[Any]) -> Any:
        return values if self.many else values[0]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} ({len(self.task_ids)} tasks)>"


def workflow_status(members: Sequence[Task], exits: Iterable[str]) -> TaskStatus:
    """One status for a workflow: running, pending or waiting while a member is (in that
    order); once every member has ended, succeeded if its last members all did, failed if a
    member failed or went dead, else cancelled."""
    statuses = {t.status for t in members}
    for active in (TaskStatus.RUNNING, TaskStatus.PENDING, TaskStatus.WAITING):
        if active in statuses:
            return active
    by_id = {t.id: t.status for t in members}
    if all(by_id.get(e) is TaskStatus.SUCCEEDED for e in exits):
        return TaskStatus.SUCCEEDED
    failed = statuses & (FAILED_PARENT_STATUSES - {TaskStatus.CANCELLED})
    return TaskStatus.FAILED if failed else TaskStatus.CANCELLED


def _summary(workflow_id: str, members: Sequence[Task]) -> WorkflowSummary:
    counts: dict[TaskStatus, int] = {}
    for t in members:
        counts[t.status] = counts.get(t.status, 0) + 1
    ended = [t.finished_at for t in members if t.status in FINAL_STATUSES]
    created = [t.created_at.timestamp() for t in members if t.created_at is not None]
    done = len(ended) == len(members)
    return WorkflowSummary(
        workflow_id,
        total=len(members),
        counts=counts,
        created_at=min(created, default=0.0),
        finished_at=max((e.timestamp() for e in ended if e), default=0.0) if done else None,
    )


class AsyncWorkflow(_WorkflowHandle):
    """A workflow enqueued on a `TaskQueue`; its methods are awaited."""

    def __init__(self, queue: TaskQueue, found: Plan | _WorkflowHandle) -> None:
        super().__init__(found)
        self._queue = queue

    async def result(self, timeout: float | None = None) -> Any:
        """Wait for its result: a chain's last result, a group's list, a chord's callback's.

        Raises `TaskFailed` for a last member that did not succeed, `ResultTimeout` after
        ``timeout`` seconds in all.
        """
        results = await self._queue.get_results(self.exits, timeout)
        return self._value([value_of(r.task_id or "", r) for r in results])

    async def tasks(self) -> list[Task]:
        """Its members as stored now, parents first."""
        return await self._queue.workflow_tasks(self.id)

    async def status(self) -> TaskStatus:
        """Where it is now (see `workflow_status`)."""
        return workflow_status(await self.tasks(), self.exits)

    async def summary(self) -> WorkflowSummary:
        """Its members' counts by status (``done``/``total``)."""
        return _summary(self.id, await self.tasks())

    async def cancel(self) -> int:
        """Cancel every member not ended yet (running ones too); how many."""
        return await self._queue.cancel_workflow(self.id)


class Workflow(_WorkflowHandle):
    """A workflow enqueued on a `SyncTaskQueue`; its methods block."""

    def __init__(self, queue: SyncTaskQueue, found: Plan | _WorkflowHandle) -> None:
        super().__init__(found)
        self._queue = queue

    def result(self, timeout: float | None = None) -> Any:
        """Wait for its result (see `AsyncWorkflow.result`)."""
        results = self._queue.get_results(self.exits, timeout)
        return self._value([value_of(r.task_id or "", r) for r in results])

    def tasks(self) -> list[Task]:
        """Its members as stored now, parents first."""
        return self._queue.workflow_tasks(self.id)

    def status(self) -> TaskStatus:
        """Where it is now (see `workflow_status`)."""
        return workflow_status(self.tasks(), self.exits)

    def summary(self) -> WorkflowSummary:
        """Its members' counts by status (``done``/``total``)."""
        return _summary(self.id, self.tasks())

    def cancel(self) -> int:
        """Cancel every member not ended yet (running ones too); how many."""
        return self._queue.cancel_workflow(self.id)


__all__ = [
    "AsyncWorkflow",
    "Canvas",
    "Chain",
    "Chord",
    "Group",
    "ParentFailed",
    "Plan",
    "Signature",
    "Workflow",
    "chain",
    "chord",
    "group",
    "is_canvas",
    "parent_ids",
    "plan",
    "workflow_status",
]
