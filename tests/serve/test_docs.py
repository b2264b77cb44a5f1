"""The interactive API documentation of ``eacfer serve`` works offline (issue #26: the API is "documented by the
generated OpenAPI page" and the server "works offline").

FastAPI's own ``/docs`` loads Swagger UI from a CDN: a blank page on a kiosk, robot or LAN without internet.
Here: (1) over HTTP, ``/docs`` and the page ``/`` name no host but the server, and every script, style sheet and
icon they reference is served by the server itself; (2) in Debian's headless Chromium with every request to
anything but 127.0.0.1 aborted, ``/docs`` renders the operations of the API and tries to reach no other host.
(No ``/redoc``: ReDoc's page fetches its logo from cdn.redoc.ly even when its script is bundled.)
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx  # the serve extra (make install); missing, these tests fail rather than skip
import pytest

from serve_testutils import Server, chromium

KEY = "docs-key"  # the documentation must stay readable when the API needs a key
_URL = re.compile(r"""(?:https?:)?//[^\s"'<>)]+""")


class _Refs(HTMLParser):
    """The URLs a page makes the browser load: ``src`` and ``href`` of script, link, img, iframe, ..."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":  # a link is followed only when clicked, it loads nothing
            return
        self.refs += [v for k, v in attrs if k in ("src", "href") and v]


@pytest.fixture(scope="module")
def server():
    s = Server(["--api-key", KEY])
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60.0) as c:
        yield c


def foreign_urls(text: str, own: str) -> list[str]:
    """Absolute or protocol-relative URLs in ``text`` whose host is not the server's."""
    return [u for u in _URL.findall(text) if urlsplit(u if "://" in u else "http:" + u).netloc != own]


@pytest.mark.parametrize("path, kinds", [
    ("/docs", {"text/javascript", "text/css"}),
    ("/", {"text/javascript"}),
])
def test_page_and_every_asset_come_from_the_server(client, server, path, kinds):
    own = urlsplit(server.url).netloc
    r = client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), (path, r.status_code)
    html = r.text
    assert foreign_urls(html, own) == [], f"{path} names another host"
    parser = _Refs()
    parser.feed(html)
    assert parser.refs, f"{path} references no asset"
    seen = set()
    for ref in parser.refs:
        if ref.startswith("data:"):  # inline (the page's empty icon), nothing to load
            continue
        url = urljoin(server.url + path, ref)
        assert urlsplit(url).netloc == own, ref
        a = client.get(url)
        assert a.status_code == 200 and len(a.content) > 0, (ref, a.status_code)
        seen.add(a.headers["content-type"].split(";")[0].replace("application/javascript", "text/javascript"))
    assert kinds <= seen, (path, seen)


def test_docs_render_the_operations_with_the_internet_blocked(server):
    from playwright.sync_api import sync_playwright

    own = urlsplit(server.url).netloc
    outside: list[str] = []

    def only_this_server(route, request) -> None:
        if urlsplit(request.url).netloc == own or request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:  # what an offline machine would see: the request fails
            outside.append(request.url)
            route.abort("internetdisconnected")

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            context = browser.new_context()
            context.route("**/*", only_this_server)
            page = context.new_page()
            page.goto(server.url + "/docs")
            # Swagger UI renders one .opblock per operation once it has fetched and parsed /openapi.json
            page.wait_for_selector(".opblock", timeout=60_000)
            paths = page.eval_on_selector_all(".opblock-summary-path", "els => els.map(e => e.innerText.trim())")
            title = page.inner_text(".info .title")
            summaries = page.inner_text("#swagger-ui")
        finally:
            browser.close()
    assert outside == [], f"the docs tried to reach other hosts: {outside}"
    assert {"/v1/predict", "/v1/predict/batch", "/v1/model", "/healthz", "/readyz", "/metrics"} <= set(paths), paths
    assert title.startswith("eacfer"), title
    assert "faces and emotions of one image" in summaries and "the model card" in summaries


def test_no_page_loads_from_a_cdn(client):
    """FastAPI's CDN-based ReDoc page is off (it would be blank offline), not merely unlinked."""
    assert client.get("/redoc").status_code == 404


def test_missing_offline_docs_package_is_named(monkeypatch):
    """Without fastapi-offline the server refuses to start with the install line, rather than serving a blank
    /docs or failing inside uvicorn."""
    import importlib.util

    from eacfer.serve.server import require_serve_extra

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fastapi_offline"
                        else real(name, *a))
    with pytest.raises(ModuleNotFoundError, match=r"needs fastapi_offline: pip install 'eacfer\[serve\]'"):
        require_serve_extra()
