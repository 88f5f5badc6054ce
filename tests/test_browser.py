"""The built docs as a reader sees them: pages opened in headless Chromium (served from 127.0.0.1, nothing
else reached) show their figures (every <img> loaded, naturalWidth > 0) and typeset equations (MathJax
output present, no MathJax error, no raw $$, \\( or TeX command left in the prose).

Uses the session's one docs build (tests/test_docs_examples.py). Skipped, with the reason, where no
Chromium is installed (Debian: apt-get install chromium)."""

import functools
import html
import http.server
import json
import re
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from test_docs_examples import LABS, built_site, docs_build  # noqa: F401  (the session's one docs build)

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")

# Appended to every HTML page the test server sends: once the page has loaded and MathJax (if any) has
# finished typesetting, it writes what a reader would notice into <pre id="mpisim-probe"> as JSON.
PROBE = r"""<script>
window.addEventListener("load", function () {
  function report() {
    var imgs = Array.prototype.slice.call(document.images);
    var prose = document.body.cloneNode(true);
    prose.querySelectorAll("pre, code, script, style, .MathJax, .MathJax_Display, .MathJax_Preview")
         .forEach(function (e) { e.remove(); });
    var text = prose.innerText || prose.textContent;
    var out = {
      images: imgs.length,
      broken: imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                  .map(function (i) { return i.getAttribute("src").slice(0, 80); }),
      math: document.querySelectorAll(".MathJax, .MathJax_Display").length,
      math_errors: document.querySelectorAll(".MathJax_Error, .merror, [data-mjx-error]").length,
      raw_tex: (text.match(/\$\$|\\\(|\\\[|\$[^$\s]|\\[a-zA-Z]{2,}/g) || []).slice(0, 5),
      roles: (text.match(/:(meth|class|func|mod|attr):`/g) || []).length,
      title: document.title
    };
    var pre = document.createElement("pre");
    pre.id = "mpisim-probe";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
  if (window.MathJax && window.MathJax.Hub) { window.MathJax.Hub.Queue(report); } else { report(); }
});
</script>"""


def browser():
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def chromium():
    path = browser()
    if not path:
        pytest.skip("Chromium not installed (apt-get install chromium): the rendered docs are not checked in a browser")
    return path


@pytest.fixture(scope="module")
def server(built_site, chromium):
    """The built site over HTTP on 127.0.0.1 (fonts and scripts load as on a web server), with the probe."""
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(built_site), **kw)

        def log_message(self, *a):
            pass

        def send_head(self):
            path = Path(self.translate_path(self.path))
            if path.is_dir():
                path = path / "index.html"
            if path.suffix != ".html" or not path.is_file():
                return super().send_head()
            body = path.read_bytes().replace(b"</body>", PROBE.encode() + b"</body>", 1)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            import io

            return io.BytesIO(body)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def chromium_args(path, profile):
    return [path, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
            "--hide-scrollbars", f"--user-data-dir={profile}", "--window-size=1280,2000"]


def open_page(chromium, url, budget_ms=20000):
    """What the probe reported for ``url`` after ``budget_ms`` of virtual time (MathJax's typesetting)."""
    with tempfile.TemporaryDirectory() as profile:
        r = subprocess.run(chromium_args(chromium, profile) + [f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
                           capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="mpisim-probe">(.*?)</pre>', r.stdout, re.S)
    assert m, f"{url}: no report from the page (chromium exit {r.returncode}): {r.stderr.strip()[-300:]}"
    return json.loads(html.unescape(m.group(1)))


@pytest.fixture(scope="module")
def pages(server, chromium):
    """Every page checked here, opened two at a time."""
    paths = [f"course/{lab}/" for lab in LABS] + ["course/", "course/instructor/", "tutorial/", "api/",
                                                  "generated/api/", "generated/detection-limit/"]
    with ThreadPoolExecutor(2) as pool:
        reports = pool.map(functools.partial(open_page, chromium), [server + p for p in paths])
    return dict(zip(paths, reports))


@pytest.mark.parametrize("lab", LABS)
def test_lab_shows_figures_and_typeset_equations(pages, lab):
    rep = pages[f"course/{lab}/"]
    assert rep["images"] >= 1 and not rep["broken"], rep
    assert rep["math"] >= 1 and rep["math_errors"] == 0, rep
    assert not rep["raw_tex"], f"raw TeX in the rendered text of {lab}: {rep['raw_tex']}"


@pytest.mark.parametrize("path", ["course/", "course/instructor/", "tutorial/", "api/", "generated/api/",
                                  "generated/detection-limit/"])
def test_page_renders_cleanly(pages, path):
    rep = pages[path]
    assert not rep["broken"], rep
    assert not rep["raw_tex"] and rep["math_errors"] == 0, rep
    assert rep["roles"] == 0, f"Sphinx roles shown raw on {path}"
    if path in ("tutorial/", "generated/detection-limit/"):
        assert rep["images"] >= 1, rep


def screenshot(chromium, url, png, height=2000, budget_ms=20000):
    """A PNG of ``url`` (for looking at the docs by hand: python tests/test_browser.py SITE_URL OUT_DIR)."""
    with tempfile.TemporaryDirectory() as profile:
        args = chromium_args(chromium, profile)
        args[-1] = f"--window-size=1280,{height}"
        subprocess.run(args + [f"--virtual-time-budget={budget_ms}", f"--screenshot={png}", url],
                       capture_output=True, timeout=120, check=True)


if __name__ == "__main__":          # screenshots of the pages a reader sees first
    import sys

    base, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    for name, path, h in [("course-overview", "course/", 2200), ("lab1", "course/01_particles/", 7000),
                          ("lab3", "course/03_spectrum/", 7000), ("lab5", "course/05_reconstruction/", 7000),
                          ("instructor", "course/instructor/", 2600), ("api-summary", "api/", 1200),
                          ("api-reference", "generated/api/", 4000)]:
        screenshot(browser(), base + path, out / f"{name}.png", height=h)
        print(f"wrote {out / name}.png")
