"""The shopper page in a real headless Chromium: text search, image upload, results render.

Skipped with a reason when Chromium is not installed (`apt-get install chromium`; CI installs it).
Saves a screenshot to bench/results/ui.png for the README.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from domain.schema import FASHION_SCHEMA
from tests.support.procs import ROOT
from tests.support.stack import running_stack

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium)")
BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def test_search_and_upload_render_results(tiny_trained, tmp_path):
    from playwright.sync_api import sync_playwright

    bundle, catalog = tiny_trained
    schema = tmp_path / "schema.toml"  # the Fashion fields plus a float price: the price control shows
    schema.write_text(
        "[fields]\n"
        + "".join(f'{name} = "{kind}"\n' for name, kind in FASHION_SCHEMA.fields.items())
        + 'price = "float"\n'
    )
    env = {"VITRINE_CATALOG_SCHEMA": str(schema)}
    with running_stack(bundle, tmp_path / "store", web=True, image_root=catalog, extra_env=env) as stack:
        load = stack.load(catalog)
        assert load.returncode == 0, load.stdout + load.stderr
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(stack.web_url + "/", wait_until="domcontentloaded", timeout=60_000)
            page.wait_for_function(
                "document.querySelectorAll('input[name=member]').length === 3", timeout=60_000
            )

            page.fill("#q", "a red dress")
            page.click("#go")
            page.wait_for_selector("#results .card", timeout=60_000)
            cards = page.locator("#results .card")
            assert cards.count() == 12
            names = cards.locator(".name").all_inner_texts()
            assert all(n.strip() for n in names), names
            page.wait_for_function(  # the first card's photo loads (lazily, on its own request)
                "(() => { const img = document.querySelector('#results .card img');"
                " return img && img.complete && img.naturalWidth > 0; })()",
                timeout=60_000,
            )

            page.wait_for_selector("#facet-groups .facet[data-field=gender] .facet-value", timeout=60_000)
            assert page.locator("#price-range").is_visible()
            choice = page.locator("#facet-groups .facet[data-field=gender] .facet-value").first
            gender = choice.get_attribute("data-value")
            count = int(choice.locator(".count").inner_text())
            choice.click()
            page.wait_for_selector("#facet-groups .facet-value.chosen", timeout=60_000)
            metas = page.locator("#results .card .meta").all_inner_texts()
            assert metas and len(metas) == min(12, count)
            assert all(m.endswith(gender) for m in metas), (gender, metas)
            page.click("#facets-clear")
            page.wait_for_function(
                "!document.querySelector('#facet-groups .facet-value.chosen')", timeout=60_000
            )
            page.fill("#price-max", "10")  # the test catalog has no prices: the range leaves nothing
            page.click("#price-apply")
            page.wait_for_function("document.getElementById('status').textContent.startsWith('0 results')")
            page.fill("#price-max", "")
            page.click("#go")
            page.wait_for_selector("#results .card", timeout=60_000)

            page.click("#results .card >> nth=0")
            assert page.locator("#panel").is_visible()
            assert "rank" in page.locator("#panel-body").inner_text()
            page.click("#panel-close")

            first_image = next((catalog / "images").glob("*.jpg"))
            page.fill("#q", "")
            page.set_input_files("#image", str(first_image))
            page.click("#go")
            page.wait_for_function(
                f"document.querySelector('#results .card')?.dataset.id === '{first_image.stem}'",
                timeout=60_000,
            )
            page.locator(".card .mlt").first.click()
            page.wait_for_function("document.getElementById('status').textContent.includes('items like')")
            assert page.locator("#results .card").count() > 0

            page.fill("#q", "watches for men")
            page.click("#clear-image")
            page.click("#go")
            page.wait_for_function("document.getElementById('status').textContent.includes('results')")
            page.click("#controls summary")
            out = ROOT / "bench" / "results"
            out.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out / "ui.png"))
            browser.close()
    assert Path(out / "ui.png").stat().st_size > 10_000
