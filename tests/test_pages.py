"""The browser check (scripts/check_pages.py) fails on what a reader would see as broken, and the built
book loads nothing from another host."""
import os
import re
import shutil
from pathlib import Path

import check_pages
import pytest

ROOT = Path(__file__).parents[1]

HTML = ROOT / "_build" / "site" / "_build" / "html"
HAVE_BROWSER = bool(shutil.which("chromium") and shutil.which("chromedriver"))
needs_browser = pytest.mark.skipif(not HAVE_BROWSER and not os.environ.get("CI"),
                                   reason="Chromium and chromium-driver are not installed (scripts/setup.sh)")

GOOD = "<html><body><main><p>fine</p><img src='dot.png'></main></body></html>"
BAD = {
    "raw_maths.html": "<html><body><main><p>the loss \\(L = x^2\\) untypeset</p></main></body></html>",
    "broken_image.html": "<html><body><main><img src='missing.png'></main></body></html>",
    "script_error.html": "<html><body><main><script>undefined_function()</script></main></body></html>",
    "cdn.html": "<html><head><script src='https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js'>"
                "</script></head><body><main><p>offline?</p></main></body></html>",
    "notebooks/wide.html": "<html><body><main><p style='white-space:nowrap'>" + "wide " * 200
                           + "</p></main></body></html>",
}
PROBLEM = {"raw_maths.html": "raw maths", "broken_image.html": "image did not load",
           "script_error.html": "console", "cdn.html": "console", "notebooks/wide.html": "scrolls sideways"}


@needs_browser
def test_the_check_passes_a_good_page_and_fails_each_kind_of_broken_one(tmp_path, capsys):
    import base64
    site = tmp_path / "html"
    (site / "notebooks").mkdir(parents=True)
    (site / "dot.png").write_bytes(base64.b64decode(   # a 1x1 PNG
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="))
    (site / "good.html").write_text(GOOD)
    (site / "favicon.ico").write_bytes((site / "dot.png").read_bytes())
    for name, text in BAD.items():
        (site / name).write_text(text)
    shots = tmp_path / "shots"
    assert check_pages.main(["--html", str(site), "--screenshots", str(shots), "--pages", "good.html"]) == 0
    assert (shots / "good.png").stat().st_size > 0
    for name, problem in PROBLEM.items():
        capsys.readouterr()
        assert check_pages.main(["--html", str(site), "--screenshots", str(shots), "--pages", name]) == 1, name
        assert problem in capsys.readouterr().out, name


@pytest.mark.skipif(not (HTML / "index.html").exists(), reason="the book is not built (scripts/build_book.py)")
def test_the_built_book_loads_no_script_style_or_font_from_another_host():
    pages = sorted(HTML.glob("**/*.html"))
    assert len(pages) > 20
    outside = re.compile(r"""<(?:script|link)\b[^>]*(?:src|href)=["'](https?:)?//""")
    for page in pages:
        tags = [m.group(0) for m in outside.finditer(page.read_text())]
        tags = [t for t in tags if "rel=\"canonical\"" not in t]
        assert not tags, f"{page.relative_to(HTML)} loads {tags[0]}"
    assert (HTML / "_static" / "vendor" / "mathjax" / "tex-mml-chtml.js").exists()
