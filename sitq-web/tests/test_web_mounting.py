"""Mounted under a prefix in another ASGI app, every link, form and redirect keeps it."""

from __future__ import annotations

import re

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient
from web_seeding import Seeded

from sitq.task import TaskStatus
from sitq_web import create_app
from sitq_web.security import CSRF_COOKIE

PREFIX = "/ops/sitq"


def test_a_mounted_dashboard_links_and_redirects_under_its_prefix(seeded: Seeded) -> None:
    dashboard = create_app(seeded.url)
    host = Starlette(routes=[Mount(PREFIX, app=dashboard)])
    # the host's lifespan does not run the dashboard's: the first request connects it
    with TestClient(host) as client:
        html = client.get(f"{PREFIX}/").text
        assert f'href="{PREFIX}/tasks"' in html
        assert f'src="{PREFIX}/static/sitq-web.js"' in html
        assert f'data-root="{PREFIX}"' in html
        assert client.get(f"{PREFIX}/static/sitq-web.css").status_code == 200
        detail = client.get(f"{PREFIX}/tasks/{seeded.dead}").text
        form = re.search(r'<form method="post" action="([^"]+)"', detail)
        assert form and form.group(1) == f"{PREFIX}/tasks/{seeded.dead}/retry"
        response = client.post(
            form.group(1),
            data={"csrf_token": client.cookies.get(CSRF_COOKIE), "next": f"/tasks/{seeded.dead}"},
            follow_redirects=False,
        )
        assert response.status_code == 303
        assert response.headers["location"] == f"{PREFIX}/tasks/{seeded.dead}"
        page = client.get(response.headers["location"]).text
        assert f'data-status="{TaskStatus.PENDING.value}"' in page
        tasks = client.get(f"{PREFIX}/tasks").text
        assert 'name="next" value="/tasks"' in tasks


def test_static_files_need_no_token_under_a_prefix(seeded: Seeded) -> None:
    host = Starlette(routes=[Mount(PREFIX, app=create_app(seeded.url, auth="t0k"))])
    with TestClient(host) as client:
        assert client.get(f"{PREFIX}/").status_code == 401
        assert client.get(f"{PREFIX}/static/sitq-web.css").status_code == 200


def test_cookies_are_secure_over_https(seeded: Seeded) -> None:
    with TestClient(create_app(seeded.url), base_url="https://testserver") as client:
        cookie = client.get("/tasks").headers["set-cookie"]
    assert CSRF_COOKIE in cookie and "secure" in cookie.lower()
