"""The newcomer's path: ``make demo`` (apps.demo) on a small synthetic catalog, then ``make up``
(apps.stack) on the store it left, then the page: results show, every image loads, the panel shows
the stored text. Images come from the blobs the demo's ingest kept (the demo pushes bytes).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.procs import ROOT, free_port, stack_env
from tests.support.stack import running_stack
from tests.web.test_browser import BROWSER_ARGS, CHROMIUM

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium)")


def run_demo(bundle, catalog, store) -> subprocess.CompletedProcess:
    ports = {name: free_port() for name in ("embedder", "ingest", "search")}
    env = {
        "PATH": "/usr/bin:/bin",
        **stack_env(ports),
        "VITRINE_STORE_PATH": str(store),
        "VITRINE_EMBEDDER_BUNDLE": str(bundle),
    }
    cmd = [sys.executable, "-m", "apps.demo", "--data", str(catalog), "--bundle", str(bundle), "--no-train"]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_demo_then_up_shows_results_with_images(tiny_trained, tmp_path):
    from playwright.sync_api import sync_playwright

    bundle, catalog = tiny_trained
    store = tmp_path / "store"
    demo = run_demo(bundle, catalog, store)
    # The fashion sample queries may miss on a briefly trained tiny bundle (exit 1); indexing may not.
    assert demo.returncode in (0, 1), demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "(0 failed)" in demo.stdout, demo.stdout[-3000:]
    lines = demo.stdout.splitlines()
    assert "serve it:  make up" in lines, demo.stdout[-800:] + demo.stderr[-2000:]
    assert any(line.startswith("then open: http://127.0.0.1:") for line in lines)
    assert any((store / "blobs").iterdir()), "the demo kept no image bytes"

    # the demo's catalog is not the web image root: every image must come from the kept blobs
    with running_stack(bundle, store, web=True, image_root=tmp_path / "nothing-here") as stack:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(stack.web_url + "/", wait_until="domcontentloaded", timeout=60_000)
            page.wait_for_function("document.getElementById('status').textContent.includes('Bundle')")
            page.fill("#q", "a red dress")
            page.click("#go")
            page.wait_for_selector("#results .card", timeout=60_000)
            assert page.locator("#results .card").count() == 12
            page.wait_for_function(
                "[...document.querySelectorAll('#results .card img')].every(i => i.complete)",
                timeout=60_000,
            )
            widths = page.locator("#results .card img").evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
            assert widths and all(w > 0 for w in widths), f"broken images: {widths}"

            page.click("#results .card >> nth=0")
            page.wait_for_selector("#panel-body .text", timeout=30_000)
            shown = page.locator("#panel-body .text").inner_text().strip()
            assert shown and shown != "(no stored text)"
            assert "articleType" in page.locator("#panel-body table.attributes").inner_text()
            browser.close()
