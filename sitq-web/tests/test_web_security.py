"""Auth, CSRF, read-only mode and the security headers."""

from __future__ import annotations

import asyncio
import re

import pytest
from starlette.requests import Request
from starlette.testclient import TestClient
from web_seeding import Seeded

import sitq
from sitq.errors import ConfigurationError
from sitq.task import TaskStatus
from sitq_web import create_app
from sitq_web.security import CSRF_COOKIE, check_bind, is_loopback

TOKEN = "s3cret-token"


def _status(seeded: Seeded, task_id: str) -> TaskStatus:
    async def read() -> TaskStatus:
        async with sitq.TaskQueue(seeded.url) as queue:
            record = await queue.backend.get_task(task_id)
            assert record is not None
            return record.status

    return asyncio.run(read())


def _csrf(client: TestClient) -> str:
    client.get("/tasks")
    token = client.cookies.get(CSRF_COOKIE)
    assert token
    return token


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused(
    client: TestClient, seeded: Seeded
) -> None:
    _csrf(client)
    for data in ({}, {"csrf_token": "forged"}):
        response = client.post(f"/tasks/{seeded.dead}/retry", data=data)
        assert response.status_code == 403
    assert _status(seeded, seeded.dead) is TaskStatus.DEAD


def test_a_post_without_the_cookie_is_refused_even_with_a_token(
    client: TestClient, seeded: Seeded
) -> None:
    token = _csrf(client)
    client.cookies.clear()
    response = client.post(f"/tasks/{seeded.dead}/retry", data={"csrf_token": token})
    assert response.status_code == 403


def test_the_csrf_token_of_the_page_makes_the_action_pass(
    client: TestClient, seeded: Seeded
) -> None:
    token = _csrf(client)
    html = client.get(f"/tasks/{seeded.dead}").text
    assert f'name="csrf_token" value="{token}"' in html
    response = client.post(f"/tasks/{seeded.dead}/retry", data={"csrf_token": token})
    assert response.status_code == 200  # followed the redirect
    assert _status(seeded, seeded.dead) is TaskStatus.PENDING


def test_read_only_shows_no_action_and_refuses_every_post(seeded: Seeded) -> None:
    with TestClient(create_app(seeded.url, read_only=True)) as client:
        html = client.get(f"/tasks/{seeded.dead}").text
        assert 'data-testid="read-only"' in html
        assert '<form method="post"' not in html
        token = _csrf(client)
        for path in (f"/tasks/{seeded.dead}/retry", "/tasks/bulk", "/queues/default/pause"):
            response = client.post(path, data={"csrf_token": token, "action": "retry"})
            assert response.status_code == 403
    assert _status(seeded, seeded.dead) is TaskStatus.DEAD


def test_a_token_is_needed_as_bearer_or_once_in_the_address(seeded: Seeded) -> None:
    with TestClient(create_app(seeded.url, auth=TOKEN)) as client:
        assert client.get("/").status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert client.get("/api/summary", headers=wrong).status_code == 401
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert client.get("/api/summary", headers=bearer).status_code == 200
        response = client.get(f"/tasks?status=dead&token={TOKEN}", follow_redirects=False)
        assert response.status_code == 303
        assert "token" not in response.headers["location"]
        assert "status=dead" in response.headers["location"]
        assert client.get("/tasks").status_code == 200  # the cookie now


def test_a_callable_decides_from_the_request(seeded: Seeded) -> None:
    def staff_only(request: Request) -> bool:
        return request.headers.get("x-staff") == "yes"

    with TestClient(create_app(seeded.url, auth=staff_only)) as client:
        assert client.get("/").status_code == 401
        assert client.get("/", headers={"x-staff": "yes"}).status_code == 200


def test_every_response_carries_the_security_headers(client: TestClient) -> None:
    for path in ("/", "/api/summary", "/tasks/nope"):
        headers = client.get(path).headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "unsafe-inline" not in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"


def test_binding_beyond_this_machine_needs_auth() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert is_loopback(host)
        check_bind(host, None)
    for host in ("0.0.0.0", "192.168.1.5", "example.com"):
        assert not is_loopback(host)
        with pytest.raises(ConfigurationError, match="--token"):
            check_bind(host, None)
        check_bind(host, TOKEN)


def test_a_bad_auth_argument_is_refused_at_once(seeded: Seeded) -> None:
    with pytest.raises(ConfigurationError, match="auth="):
        create_app(seeded.url, auth="")
    with pytest.raises(ConfigurationError, match="TaskQueue"):
        create_app(42)  # type: ignore[arg-type]


def test_pages_need_no_inline_script_or_style(client: TestClient, seeded: Seeded) -> None:
    """The CSP allows scripts and styles from /static only: no page may rely on inline ones."""
    inline = re.compile(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=", re.IGNORECASE)
    for path in ("/", "/tasks", f"/tasks/{seeded.dead}", "/workers", "/schedules", "/limits"):
        assert not inline.search(client.get(path).text), path
