"""ComfyUI's real frontend in headless Chromium (Debian's ``chromium``, driven by Playwright).

The page may only talk to the test server: every request to another host (update checks, the registry, the
model-size look-ups behind the missing-model dialog's Download buttons) is answered inside the browser with
an empty 200, so nothing leaves the machine and no console error comes from the missing network.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def skip_reason() -> str | None:
    """Why the frontend tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install playwright): no browser to drive the frontend"
    if CHROMIUM is None:
        return "Chromium is not installed (apt-get install chromium): no browser for the frontend tests"
    return None


@dataclass
class FrontendPage:
    """One browser tab on the server's frontend, with what it logged."""

    page: object
    url: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)

    def load_workflow(self, document: dict) -> None:
        self.page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", document)
        self.page.wait_for_timeout(1500)  # the missing-model and missing-node scans run after loading

    def prompt(self) -> dict:
        """``app.graphToPrompt().output`` without the frontend's display-only ``_meta``."""
        output = self.page.evaluate("async () => (await window.app.graphToPrompt()).output")
        return {node_id: {"class_type": node["class_type"], "inputs": node["inputs"]}
                for node_id, node in output.items()}

    def unregistered_node_types(self) -> list[str]:
        return self.page.evaluate(
            "() => window.app.graph.nodes.map(n => n.type).filter(t => !(t in window.LiteGraph.registered_node_types))")


@contextmanager
def frontend(url: str) -> Iterator[FrontendPage]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            tab = FrontendPage(page, url)

            def answer_outside(route) -> None:
                tab.outside_requests.append(route.request.url)
                route.fulfill(status=200, body=b"", headers={"Access-Control-Allow-Origin": "*"})

            page.route(lambda address: not address.startswith(url), answer_outside)
            page.on("pageerror", lambda error: tab.page_errors.append(str(error)))
            page.goto(url)
            page.wait_for_function("window.app && window.app.canvas && window.LiteGraph", timeout=120_000)
            page.wait_for_timeout(1000)
            # from here on every console error counts (start-up 404s of a fresh user folder do not)
            page.on("console", lambda message: message.type == "error" and tab.console_errors.append(message.text))
            yield tab
        finally:
            browser.close()
