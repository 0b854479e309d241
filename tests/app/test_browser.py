"""Real-browser tests: `streamlit run` headless, driven by Playwright with Debian's Chromium (no browser download).

Every page opens without an exception, a picked user gets a recommendation list, a lasso on the UMAP lists the
selected items; each page is saved as a screenshot, into $MMGREC_SCREENSHOTS when set (the README refreshes
assets/screenshots/ that way), else into a temporary folder. The run shown is $MMGREC_BROWSER_RUN, else the
shipped run, else the tiny test run.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "assets" / "demo_run"

CHROMIUM = os.environ.get("MMGREC_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"no Chromium at {CHROMIUM} (apt-get install -y chromium; .ci/run does)")

PAGES = {"overview": "", "recid_tree": "recid_tree", "collisions": "collisions", "codewords": "codewords",
         "recommend": "recommend", "explain": "explain", "train": "train"}
VIEWPORT = {"width": 1400, "height": 1100}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def shown_run(runs_folder) -> Path:
    chosen = os.environ.get("MMGREC_BROWSER_RUN")
    if chosen:
        return Path(chosen).resolve()
    return SHIPPED if (SHIPPED / "metrics.json").exists() else runs_folder / "tiny"


@pytest.fixture(scope="module")
def shots(shown_run, tmp_path_factory) -> Path:
    if os.environ.get("MMGREC_SCREENSHOTS"):          # the README's command that refreshes assets/screenshots
        folder = Path(os.environ["MMGREC_SCREENSHOTS"])
    else:                                             # tests never write into the checkout
        folder = tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def server(shown_run, runs_folder, tmp_path_factory):
    port = free_port()
    env = {**os.environ, "MMGREC_RUN": str(shown_run), "OMP_NUM_THREADS": "1",
           "MMGREC_CACHE": str(tmp_path_factory.mktemp("cache"))}     # what a fresh machine sees, not our caches
    if shown_run == runs_folder / "tiny":
        env["MMGREC_RUNS_DIR"] = str(runs_folder)
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py"),
                             "--server.headless", "true", "--server.port", str(port),
                             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://localhost:{port}"
    deadline = time.time() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"streamlit did not start: {proc.stdout.read().decode()[-2000:]}")
        time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM,
                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    yield context.new_page()
    context.close()


DRAWN = """() => Array.from(document.querySelectorAll("[data-testid='stPlotlyChart']"))
    .filter(c => c.offsetParent !== null).every(c => c.querySelector('.main-svg'))"""


def settle(page, timeout: float = 180) -> None:
    """Wait until the app has drawn and no script run is in progress."""
    page.wait_for_selector("[data-testid='stMain']", timeout=timeout * 1000)
    # something of the page itself: its title, or an exception or message standing in for it
    page.wait_for_selector("[data-testid='stMain'] h1, [data-testid='stException'], [data-testid='stAlert']",
                           timeout=timeout * 1000)
    deadline = time.time() + timeout
    page.wait_for_timeout(800)
    while time.time() < deadline:
        running = page.locator("[data-testid='stStatusWidget']").count()
        spinners = page.locator("[data-testid='stSpinner']").count()
        if not running and not spinners:
            break
        page.wait_for_timeout(100)
    while time.time() < deadline:                                  # plotly draws after the script ends
        if page.evaluate(DRAWN):
            break
        page.wait_for_timeout(100)
    page.wait_for_timeout(800)


def save(page, folder: Path, name: str) -> None:
    """A small PNG: the viewport, reduced to a 256-colour palette."""
    from PIL import Image

    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)


def assert_no_exception(page, name: str) -> None:
    assert page.locator("[data-testid='stException']").count() == 0, name
    assert page.locator("h1").count() >= 1, name


def test_every_page_opens_and_is_saved(server, page, shots):
    for name, path in PAGES.items():
        page.goto(f"{server}/{path}")
        settle(page)
        assert_no_exception(page, name)
        save(page, shots, name)
        if name == "collisions" and page.get_by_text("stored with this run").count():
            page.locator("[data-testid='stPlotlyChart']").last.scroll_into_view_if_needed()
            page.wait_for_timeout(800)
            save(page, shots, "collisions_sweep")


def test_every_page_in_a_fresh_session_and_its_time_to_content(server, browser, shots):
    """Each page opened by a new visitor (a new browser context: a new session, an empty browser cache), then
    opened again in that context (a new session, the browser's cache warm: a returning visitor). The seconds
    until its content is drawn go to time_to_content.csv beside the screenshots (the README quotes them); the
    difference is mostly streamlit's 4.7 MB plotly bundle, which a browser fetches and compiles once."""
    rows = []
    for name, path in PAGES.items():
        context = browser.new_context(viewport=VIEWPORT)
        fresh = context.new_page()
        seconds = []
        for _ in range(2):
            start = time.perf_counter()
            fresh.goto(f"{server}/{path}")
            settle(fresh)
            seconds.append(time.perf_counter() - start - 1.6)           # settle waits 2 x 0.8 s after drawing
            assert_no_exception(fresh, name)
        rows.append(f"{name},{seconds[0]:.2f},{seconds[1]:.2f}")
        context.close()
    (shots / "time_to_content.csv").write_text("page,empty_cache_s,warm_cache_s\n" + "\n".join(rows) + "\n")
    print("\n".join(rows))


def test_a_crafted_link_adds_no_markup_to_the_page(server, page):
    page.goto(f"{server}/?run=" + urllib.parse.quote("**bold** ![x](http://example.invalid/x.png) "
                                                    "[link](http://example.invalid)"))
    settle(page)
    sidebar = page.locator("[data-testid='stSidebar']")
    assert sidebar.get_by_text("was not found", exact=False).count() == 1
    assert page.locator("img[src*='example.invalid'], a[href*='example.invalid']").count() == 0
    assert sidebar.locator("[data-testid='stAlert'] strong").count() == 0


def test_pick_a_user_and_see_a_recommendation_list(server, page, shots):
    page.goto(f"{server}/recommend")
    settle(page)
    box = page.get_by_label("User (0 to", exact=False)
    box.fill("4")
    box.press("Enter")
    settle(page)
    assert_no_exception(page, "recommend")
    assert page.get_by_text("User 4:", exact=False).count() == 1
    assert page.get_by_text("MMGRec:", exact=False).count() == 1
    assert page.locator("[data-testid='stDataFrame']").count() >= 1
    assert "user=4" in page.url
    page.get_by_role("tab", name="Beam search").click()
    page.wait_for_timeout(800)
    save(page, shots, "recommend_beam")
    page.get_by_role("tab", name="Top-K").click()
    page.get_by_text("Explain it").click()                      # on to the Explain page for the first item
    settle(page)
    assert_no_exception(page, "explain via link")
    assert page.get_by_role("heading", name="Why this Rec-ID?").count() == 1
    assert "item=" in page.url


def test_lasso_on_the_umap_lists_the_selected_items(server, page, shots):
    page.goto(f"{server}/codewords")
    settle(page)
    plot = page.locator("[data-testid='stPlotlyChart'] .nsewdrag").first
    plot.wait_for(timeout=60_000)
    b = plot.bounding_box()
    x0, y0, w, h = b["x"], b["y"], b["width"], b["height"]
    # a lasso around the middle 70% of the plot: it always encloses points of a UMAP layout
    ring = [(0.15, 0.15), (0.85, 0.15), (0.85, 0.85), (0.15, 0.85), (0.15, 0.16)]
    page.mouse.move(x0 + w * ring[0][0], y0 + h * ring[0][1])
    page.mouse.down()
    for fx, fy in ring[1:]:
        page.mouse.move(x0 + w * fx, y0 + h * fy, steps=12)
    page.mouse.up()
    settle(page)
    assert_no_exception(page, "codewords")
    assert page.get_by_text("items selected", exact=False).count() == 1
    assert page.locator("[data-testid='stDataFrame']").count() >= 1
    assert page.get_by_role("button", name="Export CSV").count() == 1
    save(page, shots, "codewords_selection")


def test_dark_mode(server, browser, shots):
    context = browser.new_context(viewport=VIEWPORT, color_scheme="dark")
    page = context.new_page()
    try:
        page.goto(f"{server}/explain")
        settle(page)
        assert_no_exception(page, "explain (dark)")
        save(page, shots, "explain_dark")
    finally:
        context.close()
