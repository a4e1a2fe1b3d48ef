"""``python scripts/screenshot.py [URL] [--out PATH] [--query TEXT]``: the README screenshot of the web page.

Opens the page of a running stack (``make up``; default ``http://127.0.0.1:8080/``) in headless
Chromium, runs one text query, waits for the results, the facet sidebar and every result image
(a broken image, ``naturalWidth == 0``, fails the run), and saves the viewport. The image format
follows the suffix of ``--out`` (``.png`` or ``.jpg``/``.jpeg``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8080/"
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshot.png"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
TIMEOUT_MS = 120_000
# Images of the result cards that have not loaded yet, or loaded broken (naturalWidth 0).
IMAGES_STATE = """() => {
  const imgs = [...document.querySelectorAll('#results .card img')];
  return {total: imgs.length,
          pending: imgs.filter(i => !i.complete).length,
          broken: imgs.filter(i => i.complete && i.naturalWidth === 0).map(i => i.src)};
}"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url", nargs="?", default=DEFAULT_URL, help=f"the web page (default {DEFAULT_URL})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to save the image")
    parser.add_argument("--query", default="red dress", help="the text query to show")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--quality", type=int, default=80, help="JPEG quality (ignored for .png)")
    return parser.parse_args(argv)


def take(url: str, out: Path, query: str, size: tuple[int, int], quality: int) -> dict[str, int]:
    """Search ``query`` on the page at ``url`` and save the viewport to ``out``; returns image counts."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    out.parent.mkdir(parents=True, exist_ok=True)
    jpeg = out.suffix.lower() in (".jpg", ".jpeg")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": size[0], "height": size[1]})
            page.goto(url, wait_until="domcontentloaded", timeout=TIMEOUT_MS)
            page.wait_for_function(
                "document.querySelectorAll('input[name=member]').length > 0", timeout=TIMEOUT_MS
            )
            page.fill("#q", query)
            page.click("#go")
            page.wait_for_selector("#results .card img", timeout=TIMEOUT_MS)
            page.wait_for_selector("#facet-groups .facet .facet-value", timeout=TIMEOUT_MS)
            page.wait_for_function(f"({IMAGES_STATE})().pending === 0", timeout=TIMEOUT_MS)
            state = page.evaluate(IMAGES_STATE)
            if state["broken"]:
                raise RuntimeError(f"{len(state['broken'])} broken image(s): {state['broken'][:5]}")
            page.mouse.move(0, 0)  # no hover overlay on a card
            options = {"type": "jpeg", "quality": quality} if jpeg else {"type": "png"}
            page.screenshot(path=str(out), **options)
        finally:
            browser.close()
    return {"images": state["total"], "bytes": out.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    """Take the screenshot; print where it went, how many images it shows and its size."""
    args = parse_args(argv)
    taken = take(args.url, args.out, args.query, (args.width, args.height), args.quality)
    print(f"wrote {args.out}: {taken['images']} result images, all loaded; {taken['bytes']} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
