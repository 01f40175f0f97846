"""The book in a real browser: the offline HTML book and JupyterLab with live widgets.

Both run in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright; `.ci/run`
installs it). The tests skip, with the reason, where Chromium or the playwright package is
missing (and the book tests while no chapter exists, the JupyterLab test while chapter 3 does
not). Nothing here touches the network: the book is built by book_config/build.sh into a
temporary folder and served on 127.0.0.1, and any request a page makes to another host is
blocked and reported as a failure.

A screenshot of every page goes to a pytest temporary folder: each test prints the path (see it
with ``pytest -s``; ``--basetemp=DIR`` puts the folder somewhere fixed).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BUILD_SCRIPT = ROOT / "book_config" / "build.sh"
CHAPTERS = sorted(path.stem for path in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted(path.stem for path in NOTEBOOKS.glob("solutions/[0-9][0-9]_*.ipynb"))
# The chapter whose RoPE explorer the JupyterLab test drives.
LAB_NOTEBOOK = NOTEBOOKS / "03_rope.ipynb"
# Debian's chromium package; CHROMIUM overrides it (e.g. a Chromium elsewhere on a developer's
# machine). Playwright's own browser download needs the network, so it is never used.
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# Flags for headless Chromium as root on a machine without a network: without the background
# networking switches Chromium keeps trying (and failing) to reach Google's services.
CHROMIUM_ARGS = [
    "--no-sandbox",  # root cannot use the sandbox
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
]
VIEWPORT = {"width": 1280, "height": 900}
LAB_VIEWPORT = {"width": 1280, "height": 1400}  # tall enough for the whole explorer
LOCAL_HOST = "127.0.0.1"

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the playwright package is missing: "
    "pip install -r requirements-test.txt")
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"Chromium not found at {CHROMIUM}: apt-get install chromium "
                "(.ci/run does this), or set CHROMIUM to a Chromium binary",
                allow_module_level=True)

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCAL_HOST, 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# Browser


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


class PageWatch:
    """One page's problems: requests that would leave 127.0.0.1 (blocked), local requests that
    failed or answered 4xx/5xx, and uncaught JavaScript errors."""

    def __init__(self, page):
        self.external: list[str] = []
        self.failed: list[str] = []
        self.errors: list[str] = []
        # Anything with a host that is not 127.0.0.1 (blob: URLs of local pages are local).
        page.route(re.compile(r"^(?!(blob:)?https?://127\.0\.0\.1[:/]).*://.*"), self._block)
        page.on("response", self._on_response)
        page.on("requestfailed", self._on_failed)
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _block(self, route) -> None:
        self.external.append(route.request.url)
        route.abort()

    def _on_response(self, response) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.status} {response.url}")

    def _on_failed(self, request) -> None:
        # about:blank and data: frames (MathJax makes some) are not loads from the book.
        if request.url.startswith("http") and request.url not in self.external:
            self.failed.append(f"{request.failure} {request.url}")

    def check(self, where: str) -> None:
        assert not self.external, (
            f"{where} asked for network resources (a CDN?): {sorted(set(self.external))}")
        assert not self.failed, f"{where}: resources failed to load: {self.failed}"
        assert not self.errors, f"{where}: JavaScript errors: {self.errors}"


# ---------------------------------------------------------------------------------------------
# The HTML book


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    """The HTML book built by book_config/build.sh into a temporary folder."""
    if not CHAPTERS:
        pytest.skip("no chapters written yet (notebooks/NN_name.ipynb)")
    out = tmp_path_factory.mktemp("book") / "html"
    start = time.perf_counter()
    result = subprocess.run(["bash", str(BUILD_SCRIPT), str(out), str(NOTEBOOKS)], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, (
        f"build.sh failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    print(f"book built in {time.perf_counter() - start:.0f} s: {out}")
    return out


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # one line per request would flood the test output
        pass


@pytest.fixture(scope="module")
def book_url(book) -> str:
    """The book served over HTTP on a free local port (file:// would not run MathJax's loader
    the same way a real site does, and Chromium restricts fetches between file:// pages)."""
    server = http.server.ThreadingHTTPServer(
        (LOCAL_HOST, 0), functools.partial(QuietHandler, directory=str(book)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOCAL_HOST}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def book_context(browser, book_url):
    context = browser.new_context(viewport=VIEWPORT)
    try:
        yield context
    finally:
        context.close()


def expected_figures(name: str) -> int:
    """Stored outputs that the book shows as an image: a PNG, unless the same output also has
    HTML (which Jupyter Book prefers) or the cell's tags hide it."""
    folder = NOTEBOOKS / "solutions" if name in SOLUTIONS else NOTEBOOKS
    notebook = json.loads((folder / f"{name}.ipynb").read_text(encoding="utf-8"))
    count = 0
    for cell in notebook["cells"]:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if cell["cell_type"] != "code" or tags & {"remove-output", "remove-cell"}:
            continue
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data and "text/html" not in data:
                count += 1
    return count


# Runs in the page: waits for MathJax 2 to finish its first typesetting pass, then describes the
# math, the images, the links and any raw TeX left in the prose.
INSPECT_PAGE = """async () => {
  const mathNodes = [...document.querySelectorAll('.math')];
  const hasMathJax = !!document.querySelector('script[src*="MathJax.js"]');
  if (mathNodes.length && window.MathJax && MathJax.Hub) {
    await new Promise(done => MathJax.Hub.Register.StartupHook('End', done));
    await new Promise(done => MathJax.Hub.Queue(done));
  }
  const images = [...document.images];
  for (const img of images) img.loading = 'eager';
  await Promise.all(images.map(img => img.decode().catch(() => null)));
  await document.fonts.ready;  // then two frames, so that the screenshot shows the final layout
  await new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
  const unrendered = mathNodes.filter(node =>
      !node.querySelector('.MathJax, .MathJax_Display, .MathJax_SVG, .MathJax_CHTML'))
    .map(node => node.textContent.trim().slice(0, 80));
  const mathErrors = [...document.querySelectorAll('.math .merror, .math .noError')]
    .map(node => node.textContent.trim().slice(0, 80));
  const article = (document.querySelector('article') || document.body).cloneNode(true);
  article.querySelectorAll('pre, code, script, style, .cell_output, .MathJax_Preview')
    .forEach(node => node.remove());
  return {
    title: document.title,
    mathCount: mathNodes.length, hasMathJax, unrendered, mathErrors,
    prose: article.textContent,
    brokenImages: images.filter(img => !(img.complete && img.naturalWidth > 0))
      .map(img => img.getAttribute('src')),
    outputImages: document.querySelectorAll('.cell_output img').length,
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  };
}"""


def link_problem(url: str, base: str, book: Path) -> str | None:
    """Why an internal link does not resolve (no such file, or no such anchor), else None."""
    if not url.startswith(base):
        return None  # mailto:, or an external site: not fetched offline
    parsed = urllib.parse.urlsplit(url)
    relative = urllib.parse.unquote(parsed.path)[len(urllib.parse.urlsplit(base).path):]
    target = book / relative
    if target.is_dir():
        target = target / "index.html"
    if not target.is_file():
        return f"{url}: no file {relative or '/'}"
    fragment = urllib.parse.unquote(parsed.fragment)
    if fragment and target.suffix == ".html":
        text = target.read_text(encoding="utf-8", errors="replace")
        if f'id="{fragment}"' not in text:
            return f"{url}: no anchor #{fragment} in {relative}"
    return None


def open_page(context, url: str):
    page = context.new_page()
    page.set_default_timeout(60_000)  # a busy 2-core machine can be slow to draw JupyterLab
    watch = PageWatch(page)
    page.goto(url, wait_until="load")
    return page, watch


def test_book_has_a_page_per_chapter_and_no_py_pages(book):
    pages = sorted(path.stem for path in (book / "notebooks").glob("*.html"))
    assert pages == CHAPTERS, "the book's chapter pages differ from notebooks/*.ipynb"
    solutions = sorted(path.stem for path in (book / "notebooks" / "solutions").glob("*.html"))
    assert solutions == SOLUTIONS, "the solution pages differ from notebooks/solutions/*.ipynb"
    assert not list(book.rglob("*.py")), "a .py twin was copied into the book"


def test_table_of_contents_lists_every_chapter(book_context, book_url):
    page, watch = open_page(book_context, book_url)  # index.html forwards to the intro
    try:
        page.wait_for_selector("nav.bd-docs-nav")
        hrefs = page.eval_on_selector_all("nav.bd-docs-nav a[href]",
                                          "links => links.map(a => a.href)")
    finally:
        page.close()
    listed = [Path(urllib.parse.urlsplit(href).path).stem for href in hrefs]
    missing = [name for name in CHAPTERS + SOLUTIONS if name not in listed]
    assert not missing, f"chapters missing from the table of contents: {missing}"
    order = [name for name in listed if name in CHAPTERS or name in SOLUTIONS]
    assert order == CHAPTERS + SOLUTIONS, f"table of contents out of order: {order}"
    watch.check("the landing page")


@pytest.mark.parametrize("name", ["intro", *CHAPTERS, *SOLUTIONS])
def test_book_page(name, book, book_context, book_url, screenshots):
    """Opens a page: links and images resolve, math is typeset, figures show, all offline."""
    folder = "notebooks/solutions" if name in SOLUTIONS else "notebooks"
    path = "intro.html" if name == "intro" else f"{folder}/{name}.html"
    page, watch = open_page(book_context, book_url + path)
    try:
        info = page.evaluate(INSPECT_PAGE)
        page.screenshot(path=screenshots / f"book-{name}.png", full_page=True)
    finally:
        page.close()
    print(f"{name}: {info['mathCount']} formulas, {info['outputImages']} figures, "
          f"{len(info['links'])} links; screenshot {screenshots / f'book-{name}.png'}")

    watch.check(name)
    assert not info["brokenImages"], f"images that did not load: {info['brokenImages']}"
    broken = [problem for url in info["links"] if (problem := link_problem(url, book_url, book))]
    assert not broken, "broken internal links:\n" + "\n".join(broken)

    if info["mathCount"]:
        assert info["hasMathJax"], "the page has math but does not load MathJax"
    assert not info["unrendered"], f"formulas MathJax did not typeset: {info['unrendered']}"
    assert not info["mathErrors"], f"TeX errors: {info['mathErrors']}"
    # A $ left in the prose (code and outputs excluded) is a formula MyST did not parse, e.g. a
    # $$...$$ run into the lines around it; the book writes no prices.
    prose = " ".join(info["prose"].split())
    stray = [prose[max(0, m.start() - 60):m.end() + 60] for m in re.finditer(r"\$+", prose)]
    assert not stray, "raw $ left in the text (a formula not parsed as math):\n" + "\n".join(
        f"  ...{snippet}..." for snippet in stray)
    for delimiter in ("\\(", "\\["):
        assert delimiter not in prose, f"raw {delimiter} left in the text"

    if name != "intro":
        expected = expected_figures(name)
        assert info["outputImages"] == expected, (
            f"the page shows {info['outputImages']} output images, the notebook stores "
            f"{expected}")


# ---------------------------------------------------------------------------------------------
# JupyterLab with live widgets


@pytest.fixture
def jupyter_lab(tmp_path):
    """JupyterLab on a free local port, in a temporary copy of the chapter, with its config,
    runtime, settings and workspaces in temporary folders; stopped by its process id."""
    if not LAB_NOTEBOOK.exists():
        pytest.skip("chapter 3 not written yet (notebooks/03_rope.ipynb)")
    work = tmp_path / "work"
    work.mkdir()
    # Only the .ipynb: without jupytext.toml beside it, nothing pairs or writes a .py, and the
    # repository's files are never opened for writing.
    original = LAB_NOTEBOOK.read_bytes()
    shutil.copy2(LAB_NOTEBOOK, work / LAB_NOTEBOOK.name)
    write_explorers_notebook(work / EXPLORERS_NOTEBOOK)
    port, token = free_port(), "browser-test-token"
    env = dict(os.environ)
    for name, folder in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                         ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                         ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"), ("IPYTHONDIR", "ipython")]:
        env[name] = str(tmp_path / folder)
    # Lab settings for the test's own fresh settings folder: every cell stays in the page
    # (JupyterLab 4 otherwise drops cells scrolled out of view, and the test looks for the
    # explorer's elements); no news pop-up over the notebook.
    settings = {
        "notebook-extension/tracker": {"windowingMode": "none"},
        "apputils-extension/notification": {"fetchNews": "false"},
    }
    for name, values in settings.items():
        path = tmp_path / "settings" / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.open_browser=False",
        f"--ServerApp.ip={LOCAL_HOST}", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    log_path = tmp_path / "jupyterlab.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, cwd=work, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://{LOCAL_HOST}:{port}"
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                pytest.fail(f"jupyter lab exited ({server.returncode}):\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer in 90 s:\n{log_path.read_text()}")
                time.sleep(0.5)
        yield {"base": base, "token": token, "log": log_path, "original": original}
    finally:
        server.terminate()  # JupyterLab shuts its kernels down on SIGTERM
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)  # its own session: this takes any kernel with it
            server.wait(timeout=10)


# A notebook that shows every explorer, one per cell (the attention explorer in three views),
# for the test that measures how each image is drawn.
EXPLORERS_NOTEBOOK = "explorers.ipynb"
EXPLORER_CELLS = [
    "from transformer_lib import book\n"
    "from transformer_lib.book.widgets import (AttentionExplorer, RopeExplorer, "
    "SamplingExplorer,\n    TokenizerExplorer)\n"
    "stored = book.stored_model()\n"
    "text = 'Once upon a time, there was a kind farmer. He had a big cow. The cow was sad.'",
    "AttentionExplorer(stored.model, stored.tokenizer, text=text, layer=1, head=1)",
    "AttentionExplorer(stored.model, stored.tokenizer, text=text, layer='all', head=1)",
    "AttentionExplorer(stored.model, stored.tokenizer, text=text, layer='all', head='all')",
    "RopeExplorer()",
    "SamplingExplorer(stored.model, stored.tokenizer)",
    "TokenizerExplorer(stored.tokenizer)",
]


def write_explorers_notebook(path: Path) -> None:
    import nbformat

    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in EXPLORER_CELLS],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}})
    nbformat.write(notebook, path)


# Runs in the page: every explorer image's own (PNG) width and height and the size it is drawn
# at, with the width of the column around it.
IMAGE_SIZES = """() => [...document.querySelectorAll('.jp-OutputArea .widget-image')].map(img => {
  const box = img.getBoundingClientRect();
  const column = img.closest('.jp-OutputArea-output').getBoundingClientRect();
  return {natural: [img.naturalWidth, img.naturalHeight], shown: [box.width, box.height],
          column: column.width};
})"""


# Runs in the page: true once the notebook's kernel has started and is idle.
KERNEL_IDLE = """() => {
  const text = document.querySelector('#jp-main-statusbar')?.innerText || '';
  return !text.includes('No Kernel') && /\\| Idle/.test(text);
}"""

# Runs in the page: the first widget box whose slider is labelled "position" and that holds an
# image, i.e. the RoPE explorer; returns its slider value and a SHA-256 of the image bytes.
EXPLORER_STATE = """async () => {
  const boxes = [...document.querySelectorAll('.widget-vbox')].filter(box =>
      box.querySelector('.widget-image') &&
      [...box.querySelectorAll('.widget-slider .widget-label')]
        .some(label => label.textContent.trim() === 'position'));
  if (!boxes.length) return null;
  const box = boxes[0];
  box.setAttribute('data-test', 'rope-explorer');
  const slider = [...box.querySelectorAll('.widget-slider')].find(s =>
      s.querySelector('.widget-label').textContent.trim() === 'position');
  slider.setAttribute('data-test', 'position-slider');
  const img = box.querySelector('.widget-image');
  let digest = null;
  if (img.src) {
    const bytes = await (await fetch(img.src)).arrayBuffer();
    digest = [...new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))]
      .map(b => b.toString(16).padStart(2, '0')).join('');
  }
  return {position: slider.querySelector('.widget-readout').textContent.trim(), digest,
          width: img.naturalWidth};
}"""


def start_kernel(page, screenshots: Path, log: Path, timeout: float = 90) -> None:
    """Wait until the notebook's kernel is idle. The stored notebooks name their kernel, but a
    notebook copied without that metadata asks which kernel to start: choose the offered
    Python 3, as a reader would."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(KERNEL_IDLE):
        dialog = page.locator(".jp-Dialog", has_text="Select Kernel")
        if dialog.count():
            dialog.locator(".jp-Dialog-button.jp-mod-accept").click()  # "Select"
        if time.monotonic() > deadline:
            page.screenshot(path=screenshots / "lab-03_rope-no-kernel.png")
            pytest.fail(f"the kernel did not start in {timeout:.0f} s; server log:\n"
                        f"{log.read_text()[-3000:]}")
        time.sleep(0.5)


def test_rope_explorer_live_in_jupyterlab(browser, jupyter_lab, screenshots):
    """Run chapter 3 in JupyterLab, move the explorer's position slider: the plot redraws."""
    lab = jupyter_lab
    context = browser.new_context(viewport=LAB_VIEWPORT)
    try:
        page, watch = open_page(
            context, f"{lab['base']}/lab/tree/{LAB_NOTEBOOK.name}?token={lab['token']}")
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
        start_kernel(page, screenshots, lab["log"])

        # Run > Run All Cells, through the menu bar as a reader would.
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        # Wait for the run to finish (no "[*]" prompt, kernel idle) and the explorer to draw;
        # give up 20 s after the run finished without one.
        deadline, idle_since, state = time.monotonic() + 240, None, None
        while time.monotonic() < deadline:
            busy = page.locator(".jp-InputPrompt", has_text="[*]").count()
            if busy or not page.evaluate(KERNEL_IDLE):
                idle_since = None
            else:
                idle_since = idle_since or time.monotonic()
                state = page.evaluate(EXPLORER_STATE)
                if (state and state["digest"]) or time.monotonic() - idle_since > 20:
                    break
            time.sleep(1)
        page.screenshot(path=screenshots / "lab-03_rope-run.png")
        # JupyterLab renders a traceback like any stderr text: pick the ones with a traceback.
        stderr = page.locator(".jp-OutputArea-output[data-mime-type="
                              "'application/vnd.jupyter.stderr']").all_inner_texts()
        outputs = [text[-1500:] for text in stderr if "Traceback" in text]
        assert not outputs, "cells raised errors:\n" + "\n".join(outputs)
        assert "Error displaying widget" not in page.inner_text("body"), (
            "a widget failed to render: is jupyterlab_widgets installed?")
        assert state and state["digest"], (
            "no RoPE explorer (a widget box with a 'position' slider and an image) rendered "
            "after running the notebook (a static PNG instead means JupyterLab lacks the "
            f"jupyterlab_widgets front end); see {screenshots / 'lab-03_rope-run.png'}")
        assert state["width"] > 0, "the explorer's image is empty"

        # Move the position slider with the keyboard on its handle (noUiSlider takes arrows).
        explorer = page.locator("[data-test='rope-explorer']")
        explorer.scroll_into_view_if_needed()
        handle = page.locator("[data-test='position-slider'] .noUi-handle")
        before = state
        for key in ("ArrowRight", "ArrowLeft"):  # ArrowLeft in case it started at the maximum
            handle.focus()
            handle.press(key)
            page.wait_for_timeout(300)
            if page.evaluate(EXPLORER_STATE)["position"] != before["position"]:
                break
        after = before
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the kernel redraws, then the image updates
            after = page.evaluate(EXPLORER_STATE)
            if after["digest"] != before["digest"]:
                break
            time.sleep(0.5)
        explorer.screenshot(path=screenshots / "lab-03_rope-explorer.png")
        print(f"position {before['position']} -> {after['position']}; screenshots in "
              f"{screenshots}")
        assert after["position"] != before["position"], "the slider did not move"
        assert after["digest"] != before["digest"], (
            f"the plot did not change when the position moved {before['position']} -> "
            f"{after['position']}")
        assert "Error displaying widget" not in page.inner_text("body")
        watch.check("JupyterLab")
    finally:
        context.close()
    # The working copy may change (checkpoints, autosave); the repository's file must not.
    assert LAB_NOTEBOOK.read_bytes() == lab["original"], "the test modified the chapter"


def test_explorers_are_drawn_at_their_own_size(browser, jupyter_lab, screenshots):
    """Every explorer's image is shown at its PNG's own width when the column has room, shrunk
    (keeping its shape) when not, and never stretched past it; the attention explorer's
    all-layers view is a grid, no taller than it is wide."""
    lab = jupyter_lab
    context = browser.new_context(viewport=LAB_VIEWPORT)
    try:
        page, watch = open_page(
            context, f"{lab['base']}/lab/tree/{EXPLORERS_NOTEBOOK}?token={lab['token']}")
        page.wait_for_selector(".jp-NotebookPanel .jp-Cell")
        start_kernel(page, screenshots, lab["log"])
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        expected = len(EXPLORER_CELLS) - 1
        deadline, sizes = time.monotonic() + 300, []
        while time.monotonic() < deadline:
            sizes = page.evaluate(IMAGE_SIZES)
            if len(sizes) == expected and all(size["natural"][0] > 0 for size in sizes):
                break
            time.sleep(1)
        page.wait_for_timeout(500)  # the last layout pass
        sizes = page.evaluate(IMAGE_SIZES)
        explorers = page.locator(".jp-OutputArea .widget-vbox")
        for index in range(explorers.count()):
            explorers.nth(index).screenshot(path=screenshots / f"lab-explorer-{index}.png")
        page.screenshot(path=screenshots / "lab-explorers.png", full_page=True)
        print("explorer images (PNG width x height -> drawn width x height, column width):")
        for cell, size in zip(EXPLORER_CELLS[1:], sizes, strict=False):
            name = cell.replace("stored.model, stored.tokenizer", "...").replace("text=text, ", "")
            print(f"  {name:45} {size['natural'][0]}x{size['natural'][1]} -> "
                  f"{size['shown'][0]:.0f}x{size['shown'][1]:.0f} (column {size['column']:.0f})")
        print(f"screenshots in {screenshots}")
        assert len(sizes) == expected, f"{len(sizes)} explorer images drawn, expected {expected}"
        for cell, size in zip(EXPLORER_CELLS[1:], sizes, strict=True):
            (width, height), (shown_w, shown_h) = size["natural"], size["shown"]
            assert shown_w <= width + 0.5, f"{cell}: stretched from {width} to {shown_w:.0f} px"
            if width <= size["column"]:
                assert abs(shown_w - width) <= 0.5, f"{cell}: {width} px drawn at {shown_w:.0f}"
            assert abs(shown_h / shown_w - height / width) < 0.01, f"{cell}: shape changed"
        all_layers = sizes[1]
        assert all_layers["natural"][1] <= 1.1 * all_layers["natural"][0], (
            "the all-layers view of one head is a tall strip, not a grid")
        watch.check("JupyterLab")
    finally:
        context.close()
