"""The live page at `GET /`, driven by a real headless Chromium against a real node and services.

A person's path through the page: set stock, fill the order form with the
keyboard, submit, and see the order reach VALIDATED, which node served each
step and who owns it; read the stock; call the echo service. Also: the page
loads nothing from anywhere but its node, every field has a label, the
order's progress is announced (aria-live), and the page's own JavaScript
(Kafka's partitioner, the SSE parser) agrees with the Python side.

Chromium is Debian's (`apt-get install chromium`; .ci/run installs it), driven by
Playwright from PyPI with `executable_path`: no browser download. A missing
Chromium fails the test, it does not skip it. The screenshot lands in
test-artifacts/live-page.png at the repository's root.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Route, expect, sync_playwright

from stategate.streams.erasable_keys import partition_for

from .conftest import System

CHROMIUM = Path(os.environ.get("STATEGATE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
DEADLINE_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium (a fresh, empty profile), closed after the module's tests."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install chromium` (.ci/run installs it)", pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Watched:
    """A page with every request it makes and every error its scripts report."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", self.on_request)
        page.on("console", self.on_console)
        page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))

    def on_request(self, request: Request) -> None:
        self.requests.append(request.url)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)


@pytest.fixture()
def live_page(browser: Browser, system: System) -> Iterator[Watched]:
    """The node's page, opened and ready (its scripts ran and the partition map is shown)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        watched = Watched(context.new_page())
        watched.page.goto(f"{system.url}/")
        expect(watched.page.locator("body")).to_have_attribute("data-ready", "true", timeout=DEADLINE_MS)
        expect(watched.page.locator("#cluster-rows")).to_contain_text("node-1", timeout=DEADLINE_MS)
        yield watched
    finally:
        context.close()


def type_into(page: Page, selector: str, text: str) -> None:
    """Focus a field and replace its text by typing, as a person with a keyboard would."""
    page.focus(selector)
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type(text)


def test_an_order_placed_on_the_page_reaches_validated(
    live_page: Watched, system: System, product: str, customer: str
) -> None:
    page = live_page.page

    type_into(page, "#inventory-product", product)
    type_into(page, "#inventory-stock", "10")
    page.focus("#inventory-form button[value=set]")
    page.keyboard.press("Enter")
    expect(page.locator("#inventory-status")).to_contain_text("200", timeout=DEADLINE_MS)

    type_into(page, "#customer_id", customer)
    page.keyboard.press("Tab")  # the fields follow each other in the tab order
    assert page.evaluate("document.activeElement.id") == "product"
    page.keyboard.type(product)
    type_into(page, "#quantity", "2")
    type_into(page, "#price", "9.5")
    page.keyboard.press("Enter")  # submits the form

    status = page.locator("#progress-status")
    expect(status).to_contain_text("VALIDATED", timeout=DEADLINE_MS)
    order_id = page.locator("#progress-table").get_attribute("data-order-id")
    assert order_id
    rows = page.locator("#progress-rows")
    expect(rows).to_contain_text("CREATED")
    expect(rows.locator("tr").last).to_contain_text(
        "FRAUD_CHECK: PASS, INVENTORY_CHECK: PASS, ORDER_DETAILS_CHECK: PASS"
    )
    expect(rows.locator("tr").first).to_contain_text("POST /v1/orders → 202")
    expect(rows.locator("tr").first).to_contain_text("node-1")
    expect(rows.locator("tr").last).to_contain_text("node-1")
    count = max(p for node in _cluster(page) for p in node["partitions"]) + 1
    expect(page.locator("#progress-owner")).to_contain_text(
        f"partition {partition_for(order_id.encode(), count)} of {count}, owned by node-1", timeout=DEADLINE_MS
    )

    page.focus("#inventory-form button[value=read]")
    page.keyboard.press("Enter")
    expect(page.locator("#inventory-body")).to_contain_text('"reserved": 2', timeout=DEADLINE_MS)

    screenshot = ARTIFACTS / "live-page.png"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(screenshot), full_page=True)
    print(f"screenshot of the live page: {screenshot}")

    assert live_page.errors == []
    assert_only_its_node(live_page.requests, system.url)


def test_the_page_follows_the_event_stream_and_reconnects_with_the_last_event_id(
    live_page: Watched, system: System, product: str, customer: str
) -> None:
    """The SSE contract, served by the test: a stopping node's `reconnect`, then the rest from another node."""
    page = live_page.page
    asked: list[str | None] = []

    def events(route: Route) -> None:
        asked.append(route.request.headers.get("last-event-id"))
        order_id = route.request.url.split("/v1/orders/")[1].split("/events")[0]
        order = {"id": order_id, "customer_id": customer, "product": product, "quantity": 1, "price": 1.0}
        if len(asked) == 1:
            created = {**order, "state": "CREATED", "version": 1, "validations": {}}
            body = (
                f"event: order\r\nid: v1\r\ndata: {json.dumps(created)}\r\n\r\n"
                ": keep-alive\r\n"
                'event: reconnect\r\nretry: 100\r\ndata: {"reason": "node stopping"}\r\n\r\n'
            )
            node = "node-stopping"
        else:
            validations = {"ORDER_DETAILS_CHECK": "PASS", "INVENTORY_CHECK": "PASS", "FRAUD_CHECK": "PASS"}
            validated = {**order, "state": "VALIDATED", "version": 2, "validations": validations}
            body = f"event: order\nid: v2\ndata: {json.dumps(validated)}\n\n"
            node = "node-next"
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream", "X-Stategate-Node": node}, body=body)

    page.route("**/v1/orders/*/events", events)
    type_into(page, "#customer_id", customer)
    type_into(page, "#product", product)
    page.keyboard.press("Enter")

    expect(page.locator("#progress-status")).to_contain_text(
        "VALIDATED (version 2, from node-next)", timeout=DEADLINE_MS
    )
    assert asked == [None, "v1"]
    rows = page.locator("#progress-rows tr")
    expect(rows.nth(1)).to_contain_text("event v1")
    expect(rows.nth(1)).to_contain_text("node-stopping")
    expect(rows.nth(2)).to_contain_text("the node asked for a reconnect: reconnecting with Last-Event-ID v1")
    expect(rows.nth(3)).to_contain_text("event v2")
    expect(rows.nth(3)).to_contain_text("node-next")
    expect(rows).to_have_count(4)


def test_a_service_call_shows_status_headers_and_body(live_page: Watched, system: System) -> None:
    page = live_page.page
    type_into(page, "#service-path", "from-the-page")
    type_into(page, "#service-body", "ping")
    page.focus("#service-form button")
    page.keyboard.press("Enter")

    expect(page.locator("#service-status")).to_contain_text("200", timeout=DEADLINE_MS)
    expect(page.locator("#service-status")).to_contain_text("node-1")
    expect(page.locator("#service-headers")).to_contain_text("content-type:")
    expect(page.locator("#service-response")).to_contain_text('"path":"/from-the-page"')
    expect(page.locator("#service-response")).to_contain_text('"body":"ping"')
    assert_only_its_node(live_page.requests, system.url)


def test_every_field_has_a_label_and_the_progress_is_announced(live_page: Watched) -> None:
    page = live_page.page
    unlabelled = page.evaluate(
        """[...document.querySelectorAll('input, select, textarea')]
             .filter(el => el.labels.length === 0 || [...el.labels].every(l => !l.textContent.trim()))
             .map(el => el.id || el.name)"""
    )
    assert unlabelled == []
    nameless_buttons = page.evaluate(
        "[...document.querySelectorAll('button')].filter(b => !b.textContent.trim()).map(b => b.outerHTML)"
    )
    assert nameless_buttons == []
    assert page.get_attribute("#progress", "aria-live") in ("polite", "assertive")
    assert page.evaluate("document.querySelector('#progress-status').closest('[aria-live]') !== null")
    page.focus("#price")
    page.keyboard.press("Tab")  # to the submit button, by keyboard: its focus ring must show
    assert page.evaluate("document.activeElement.textContent") == "Place order"
    ring = page.evaluate(
        "(s => [s.outlineStyle, parseFloat(s.outlineWidth)])(getComputedStyle(document.activeElement))"
    )
    assert ring[0] != "none" and ring[1] >= 2, ring
    assert page.get_attribute("html", "lang") == "en"
    assert page.locator("h1").count() == 1
    assert page.locator("main").count() == 1


def test_the_pages_partitioner_is_kafkas(live_page: Watched) -> None:
    keys = ["abc", "order-1", "1f51db04-0d1c-4e0b-9f1e-2f0c5b6a7d8e", "héllo wörld ✓", "", "abcde"]
    in_page = live_page.page.evaluate(
        """async keys => {
             const { partitionFor } = await import('/static/partitioner.js');
             return keys.map(key => partitionFor(key, 12));
           }""",
        keys,
    )
    assert in_page == [partition_for(key.encode(), 12) for key in keys]


def test_the_pages_sse_parser_reads_events_cut_anywhere(live_page: Watched) -> None:
    stream = (
        ": keep-alive\r\n"
        'event: order\r\nid: a1\r\ndata: {"state":\r\ndata: "CREATED"}\r\n\r\n'
        "event: order\nid: a2\ndata: second\n\n"
        "data: third\r\r"
        "event: reconnect\nretry: 1500\ndata: {}\n\n"
    )
    events: list[Any] = live_page.page.evaluate(
        """async stream => {
             const { SseParser } = await import('/static/sse.js');
             const seen = [];
             const parser = new SseParser(event => seen.push(event));
             for (const c of stream) parser.feed(c);  // one character at a time: every cut
             return [...seen, parser.retryMs];
           }""",
        stream,
    )
    assert events == [
        {"event": "order", "id": "a1", "data": '{"state":\n"CREATED"}'},
        {"event": "order", "id": "a2", "data": "second"},
        {"event": "message", "id": "a2", "data": "third"},
        {"event": "reconnect", "id": "a2", "data": "{}"},
        1500,
    ]


def _cluster(page: Page) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = page.evaluate("fetch('/v1/cluster').then(r => r.json()).then(c => c.nodes)")
    return nodes


def assert_only_its_node(requests: list[str], node_url: str) -> None:
    """Every request the page made went to the node that served it (inline data: URLs aside)."""
    origin = urlsplit(node_url)
    elsewhere = [
        url
        for url in requests
        if not url.startswith("data:")
        and (urlsplit(url).scheme, urlsplit(url).netloc) != (origin.scheme, origin.netloc)
    ]
    assert requests
    assert elsewhere == []
