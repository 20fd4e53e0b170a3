"""``sitq workflows`` and what ``sitq inspect`` shows of a workflow member, on a memory store
shared by name with the command (run in this process through click's runner)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from click.testing import CliRunner

import sitq
from sitq.cli import cli

pytestmark = [pytest.mark.needs_memory]

URL = "memory://workflows-cli-tests"
queue = sitq.TaskQueue(URL)


@queue.task()
def step(x: int = 0) -> int:
    return x + 1


def sitq_command(*args: str) -> Any:
    """Run ``sitq ARGS --backend URL``; the JSON it prints, or its text."""
    runner = CliRunner(env={"COLUMNS": "160"})
    result = runner.invoke(cli, [*args, "--backend", URL], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output) if "--json" in args else result.output


async def _run_first(wf: Any) -> None:
    """Run the workflow's first member by hand (claim and complete it)."""
    claimed = await queue.backend.claim_by_id(wf.task_ids[0], worker_id="cli", lease_seconds=30)
    assert claimed is not None and claimed.lease_token is not None
    assert await queue.backend.complete(claimed.id, claimed.lease_token, None)


def test_workflows_and_inspect_show_progress_parents_and_children() -> None:
    async def setup() -> Any:
        wf = await queue.enqueue(sitq.chain(step.s(1), step.s(), step.s()))
        await _run_first(wf)
        done = await queue.enqueue(step.s(5))
        claimed = await queue.backend.claim_by_id(
            done.task_ids[0], worker_id="cli", lease_seconds=30
        )
        assert claimed is not None and claimed.lease_token is not None
        await queue.backend.complete(claimed.id, claimed.lease_token, None)
        return wf, done

    wf, done = asyncio.run(setup())
    running = sitq_command("workflows", "--json")
    assert [w["id"] for w in running] == [wf.id]
    assert (running[0]["done"], running[0]["total"]) == (1, 3)
    assert running[0]["counts"] == {"succeeded": 1, "pending": 1, "waiting": 1}
    every = sitq_command("workflows", "--all", "--json")
    assert [w["id"] for w in every] == [done.id, wf.id]
    text = sitq_command("workflows")
    assert wf.id in text and "1/3" in text and done.id not in text

    first, middle, last = wf.task_ids
    shown = sitq_command("inspect", middle, "--json")
    assert [p["id"] for p in shown["parents"]] == [first]
    assert shown["parents"][0]["status"] == "succeeded"
    assert [c["id"] for c in shown["children"]] == [last]
    assert shown["workflow"]["id"] == wf.id and shown["workflow"]["done"] == 1
    text = sitq_command("inspect", middle)
    for expected in ("workflow", "parents", "children", first, last, "1/3 done"):
        assert expected in text
    lone = sitq_command("inspect", first, "--json")
    assert lone["parents"] == [] and [c["id"] for c in lone["children"]] == [middle]
