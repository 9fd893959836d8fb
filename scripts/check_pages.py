"""Open every page of the built book in headless Chromium, with no network, and fail on what a
reader would see as broken.

    python scripts/check_pages.py                    # the built book in _build/site/_build/html
    python scripts/check_pages.py --html DIR --screenshots DIR --pages notebooks/ch4_mae.html

The book is served on 127.0.0.1; every other host is unreachable for the browser (Chromium's
host-resolver rules), so a page that still needs a CDN fails here. Each page fails on:

- maths left untypeset: raw \\( or $$ in the page's text outside code, or fewer MathJax outputs than
  the page has maths;
- an image that did not load (naturalWidth 0);
- a console error (a script or file that failed to load, a JavaScript exception);
- chapter 4's widget not showing its first state (the slider, and the figure drawn for it);
- on the chapter and results pages, horizontal scrolling of the whole page at 420 px wide (a phone);
- on the chapter pages at 1280 px, a code cell (input, not output) that scrolls sideways: the
  notebooks are formatted to 88 columns, and book.css makes 88 columns fit;
- on any page at 1280 px, a table that scrolls sideways (a metric table must show all its columns).

A screenshot of each page at 1280 px (and at 420 px where that is checked) goes to --screenshots.
Prints one line per page; exits 1 if any page failed.
"""
from __future__ import annotations

import argparse
import functools
import shutil
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "site" / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
NARROW = ("notebooks/", "book/ablation.html")       # pages that must not scroll sideways on a phone
WIDGET_PAGES = ("notebooks/ch4_mae.html",)

WIDE_CODE_JS = """
return [...document.querySelectorAll('div.cell_input div.highlight pre')]
  .filter(p => p.scrollWidth > p.clientWidth + 1).map(p => p.innerText.split('\\n')[0].slice(0, 60));
"""

WIDE_TABLE_JS = """
return [...document.querySelectorAll('main table')].map(t => {
    const box = t.closest('.pst-scrollable-table-container') || t.parentElement;
    return [box.scrollWidth - box.clientWidth, t.rows[0].innerText.replace(/\\s+/g, ' ').slice(0, 60)];
  }).filter(x => x[0] > 1);
"""

MATH_JS = """
const done = arguments[arguments.length - 1];
const p = window.MathJax && MathJax.startup && MathJax.startup.promise;
(p ? p : Promise.resolve()).then(() => done(true), () => done(false));
"""
TEXT_JS = """
const body = document.querySelector("main") || document.body;
const copy = body.cloneNode(true);
copy.querySelectorAll("pre, code, .highlight, script, style, mjx-container").forEach(e => e.remove());
return {text: copy.textContent,
        maths: document.querySelectorAll("main .math").length,
        typeset: document.querySelectorAll("main mjx-container").length,
        broken: [...document.images].filter(i => i.complete && i.naturalWidth === 0)
                                   .map(i => i.getAttribute("src")),
        loading: [...document.images].filter(i => !i.complete).length};
"""
WIDGET_JS = """
const s = document.querySelector(".widget-slider, .jupyter-widgets .widget-hslider");
const img = document.querySelector(".jupyter-widgets-output-area img, .widget-output img");
return {slider: !!s, figure: !!(img && img.complete && img.naturalWidth > 0)};
"""
SCROLL_JS = "return document.documentElement.scrollWidth - document.documentElement.clientWidth;"


def serve(folder: Path) -> tuple[ThreadingHTTPServer, str]:
    """The folder on 127.0.0.1 on a free port, quietly, in a thread."""
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def browser():
    """Headless Chromium (Debian's chromium + chromium-driver) that can reach 127.0.0.1 only."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    binary, driver = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not binary or not driver:
        raise SystemExit("the page check needs Chromium and its driver: apt-get install chromium chromium-driver "
                         "(scripts/setup.sh does it)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", "--window-size=1280,1000"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    b = webdriver.Chrome(service=Service(driver), options=opts)
    b.set_script_timeout(30)
    return b


def wait_for(b, script: str, ok, seconds: float = 20):
    """Run `script` until ok(result) or the time is up; the last result."""
    import time
    end = time.time() + seconds
    while True:
        result = b.execute_script(script)
        if ok(result) or time.time() > end:
            return result
        time.sleep(0.25)


def check(b, base: str, page: str, shots: Path) -> list[str]:
    """The problems of one page (empty: fine), with its screenshots taken."""
    b.set_window_size(1280, 1000)
    b.get(base + page)
    problems = [] if b.execute_async_script(MATH_JS) else ["MathJax failed to start"]
    seen = wait_for(b, TEXT_JS, lambda r: r["loading"] == 0)
    if "\\(" in seen["text"] or "$$" in seen["text"]:
        problems.append("raw maths in the text: " + seen["text"][max(0, seen["text"].find("\\(") - 40):][:80])
    if seen["typeset"] < seen["maths"]:
        problems.append(f"maths not typeset: {seen['typeset']} MathJax outputs for {seen['maths']} formulas")
    problems += [f"image did not load: {src}" for src in seen["broken"]]
    if page in WIDGET_PAGES:
        w = wait_for(b, WIDGET_JS, lambda r: r["slider"] and r["figure"])
        if not (w["slider"] and w["figure"]):
            problems.append(f"the widget's first state is not shown (slider {w['slider']}, figure {w['figure']})")
        else:                                    # a picture of the widget itself
            from selenium.webdriver.common.by import By
            widget = b.find_element(By.CSS_SELECTOR, ".widget-slider").find_element(By.XPATH, "../..")
            b.execute_script("arguments[0].scrollIntoView();", widget)
            widget.screenshot(str(shots / f"{page.replace('/', '_').removesuffix('.html')}.widget.png"))
    if page.startswith("notebooks/"):
        problems += [f"a code cell scrolls sideways at 1280 px: {first!r}" for first in b.execute_script(WIDE_CODE_JS)]
    problems += [f"a table scrolls sideways at 1280 px by {px} px: {head!r}" for px, head in b.execute_script(WIDE_TABLE_JS)]
    problems += [f"console: {e['message'][:200]}" for e in b.get_log("browser") if e["level"] == "SEVERE"]
    name = page.replace("/", "_").removesuffix(".html")
    b.save_screenshot(str(shots / f"{name}.png"))
    if page.startswith(NARROW):
        b.set_window_size(420, 900)
        b.get(base + page)
        b.execute_async_script(MATH_JS)
        extra = b.execute_script(SCROLL_JS)
        if extra > 1:
            problems.append(f"at 420 px the page scrolls sideways by {extra} px")
        b.save_screenshot(str(shots / f"{name}.420.png"))
        b.get_log("browser")
    return problems


def pages_of(html: Path) -> list[str]:
    """The book's pages: the front page, the prose pages and the chapters (not search or the index)."""
    found = [p.relative_to(html).as_posix() for p in sorted(html.rglob("*.html"))]
    return [p for p in found if p == "index.html" or p.startswith(("book/", "notebooks/"))]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--html", type=Path, default=HTML)
    p.add_argument("--screenshots", type=Path, default=SHOTS)
    p.add_argument("--pages", nargs="+", default=None, help="pages relative to --html (default: all)")
    a = p.parse_args(argv)
    if not (a.html / "index.html").exists() and not a.pages:
        raise SystemExit(f"no built book in {a.html}: run `python scripts/build_book.py` (make test does) first")
    a.screenshots.mkdir(parents=True, exist_ok=True)
    server, base = serve(a.html)
    b = browser()
    failed = 0
    try:
        for page in a.pages or pages_of(a.html):
            problems = check(b, base, page, a.screenshots)
            failed += bool(problems)
            print(f"{page:<42} " + ("ok" if not problems else "FAILED\n    " + "\n    ".join(problems)), flush=True)
    finally:
        b.quit()
        server.shutdown()
    print(f"{failed} page(s) failed; screenshots in {a.screenshots}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
