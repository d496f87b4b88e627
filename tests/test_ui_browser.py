"""The web app in a real browser: headless Chromium (Debian's package) driven by Playwright,
against uvicorn on a loopback port with the offline preset's real models on the photos in
``examples/photos``. One server and one browser for the module; each test gets a fresh page,
and every request any page makes is recorded and must stay on the server's origin.

Set ``UI_SCREENSHOTS`` to a folder to save screenshots of the main views there (docs/ uses them).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("sentence_transformers")
uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
playwright_api = pytest.importorskip("playwright.sync_api")
if shutil.which("chromium") is None:
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)

from PIL import Image  # noqa: E402
from server_support import free_port, wait_for  # noqa: E402

from imgctx import Extractor, RecordNotFoundError, ServerSettings  # noqa: E402
from imgctx.testing import settings_for_tests  # noqa: E402

expect = playwright_api.expect
pytestmark = [pytest.mark.models, pytest.mark.browser]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "photos"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
API_KEY = "browser-test-key"
SHOTS = os.environ.get("UI_SCREENSHOTS")


@contextlib.contextmanager
def _serve(app: Any) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=60)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The allowed root: ``photos`` (the example photos) and ``dups`` (copies of two of them)."""
    root = tmp_path_factory.mktemp("ui") / "root"
    shutil.copytree(EXAMPLES, root / "photos")
    (root / "dups").mkdir()
    shutil.copy(root / "photos" / "chelsea.jpg", root / "dups" / "chelsea-copy.jpg")
    with Image.open(root / "photos" / "coffee.jpg") as im:
        im.resize((im.width // 2, im.height // 2)).save(root / "dups" / "coffee-small.jpg", quality=90)
    return root


@pytest.fixture(scope="module")
def extractor(tmp_path_factory: pytest.TempPathFactory, root: Path) -> Iterator[Extractor]:
    ex = Extractor(settings=settings_for_tests(tmp_path_factory.mktemp("ui-db"), preset="offline"))
    for folder in ("photos", "dups"):
        report = ex.process_directory(root / folder)
        assert report.failed == 0, report.failed_files
    yield ex
    ex.close()


@pytest.fixture(scope="module")
def base(extractor: Extractor, root: Path) -> Iterator[str]:
    from imgctx.server import create_app

    with _serve(create_app(extractor=extractor, server_settings=ServerSettings.from_values(allowed_roots=[root]))) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS)
        yield b
        b.close()


def _page(browser: Any, base: str, requests: list[str], **context: Any) -> Any:
    ctx = browser.new_context(viewport=context.pop("viewport", {"width": 1280, "height": 860}), **context)
    ctx.set_default_timeout(30_000)
    page = ctx.new_page()
    page.on("request", lambda r: requests.append(r.url))
    page.on("websocket", lambda ws: requests.append(ws.url))
    return page


def _assert_same_origin(requests: list[str], base: str) -> None:
    ws_base = base.replace("http://", "ws://")
    outside = [u for u in requests if not (u.startswith((f"{base}/", f"{ws_base}/", "blob:", "data:")) or u == base)]
    assert not outside, outside


@pytest.fixture
def page(browser: Any, base: str) -> Iterator[Any]:
    """A fresh page (own storage); at the end, every request it made stayed on the origin."""
    requests: list[str] = []
    p = _page(browser, base, requests)
    yield p
    p.context.close()
    assert requests
    _assert_same_origin(requests, base)


LOADED = """[...document.images].filter((i) => {
  const r = i.getBoundingClientRect();
  return i.offsetParent && r.bottom > 0 && r.top < innerHeight && r.width > 0;
}).every((i) => i.complete && i.naturalWidth)"""


def _shot(page: Any, name: str) -> None:
    """With UI_SCREENSHOTS set, a screenshot once the pictures in view have loaded."""
    if SHOTS:
        wait_for(lambda: page.evaluate(LOADED), timeout=30, every=0.1)
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


def _tiles(page: Any) -> Any:
    return page.locator("#results [data-image-id]")


def _filenames(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("#results [data-image-id] .name").all_text_contents()]


def _search(page: Any, text: str) -> None:
    box = page.locator('input[type="search"]')
    box.click()
    box.press_sequentially(text, delay=40)
    expect(page.locator("#results")).to_have_attribute("data-query", text)


def _api(base: str) -> Any:
    return httpx.Client(base_url=base, timeout=60)


# -- search, detail, more like this, filters ---------------------------------------------------


def test_search_as_you_type_shows_the_cat_first_and_lives_in_the_url(page: Any, base: str, extractor: Extractor) -> None:
    page.goto(base)
    expect(_tiles(page).first).to_be_visible()
    _search(page, "a cat")
    first = _tiles(page).first
    # chelsea.jpg or its byte-identical copy in dups/ (same score; ties go by record id)
    cats = {r.id: r for r in extractor.list() if r.filename in ("chelsea.jpg", "chelsea-copy.jpg")}
    expect(first).to_have_attribute("data-image-id", re.compile("^(" + "|".join(cats) + ")$"))
    cat = cats[first.get_attribute("data-image-id")]
    expect(first.locator("img")).to_have_attribute("alt", cat.caption)
    assert len({_filenames(page)[0], _filenames(page)[1]} & {"chelsea.jpg", "chelsea-copy.jpg"}) == 2
    expect(first.locator(".score")).to_have_text(re.compile(r"^0\.\d\d$|^1\.00$"))
    assert "q=a+cat" in page.url
    _shot(page, "search")
    scores = [float(t) for t in page.locator("#results [data-image-id] .score").all_text_contents()]
    cutoff = 0.3
    assert scores[0] >= cutoff > scores[-1]
    page.locator("#min-score").fill(str(cutoff))  # the minimum score hides the weaker hits
    expect(_tiles(page)).to_have_count(sum(s >= cutoff for s in scores))
    assert "min=0.3" in page.url
    page.goto(f"{base}/?q=a+cup+of+coffee")  # a bookmarked search
    expect(page.locator('input[type="search"]')).to_have_value("a cup of coffee")
    expect(page.locator("#results")).to_have_attribute("data-query", "a cup of coffee")
    assert _filenames(page)[0] == "coffee.jpg" or _filenames(page)[0] == "coffee-small.jpg"


def test_detail_keys_and_more_like_this(page: Any, base: str, extractor: Extractor) -> None:
    page.goto(f"{base}/?q=rocket+launch")
    expect(page.locator("#results")).to_have_attribute("data-query", "rocket launch")
    names = _filenames(page)
    assert names[0] == "rocket.jpg"
    page.locator("#results [data-image-id] button.open").first.focus()  # a tile opens with Enter
    page.keyboard.press("Enter")
    dialog = page.locator("#detail")
    expect(dialog).to_be_visible()
    expect(page.locator("#detail-title")).to_have_text("rocket.jpg")
    rocket = next(r for r in extractor.list() if r.filename == "rocket.jpg")
    expect(page.locator("#detail-caption")).to_have_text(rocket.caption)
    expect(page.locator("#detail-img")).to_have_attribute("alt", rocket.caption)
    expect(page.locator("#detail-caption-note")).to_be_visible()  # offline preset: composed from tags
    expect(page.locator("#detail-tags tr")).to_have_count(len(rocket.tags))
    expect(page.locator("#detail-facts")).to_contain_text(f"{rocket.size[0]} × {rocket.size[1]} px")
    _shot(page, "detail")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#detail-title")).to_have_text(names[1])
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#detail-title")).to_have_text("rocket.jpg")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    page.locator("#results [data-image-id] button.open").first.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#detail-title")).to_have_text("rocket.jpg")
    with page.expect_download() as download:
        page.locator("#detail-download").click()
    assert download.value.suggested_filename == "rocket.jpg"
    page.get_by_role("button", name="More like this").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#results")).to_have_attribute("data-query", f"like:{rocket.id}")
    expect(page.locator("#like-banner")).to_contain_text("rocket.jpg")
    similar = _filenames(page)
    assert "rocket.jpg" not in similar and len(similar) == extractor.count() - 1
    assert f"like={rocket.id}" in page.url
    page.go_back()  # the browser's back button returns to the search
    expect(page.locator("#results")).to_have_attribute("data-query", "rocket launch")
    expect(page.locator('input[type="search"]')).to_have_value("rocket launch")


def test_filter_chips_from_the_tags_in_the_store(page: Any, base: str, extractor: Extractor) -> None:
    page.goto(base)
    counts = extractor.object_counts()
    chip = page.locator('#chips [data-object="cat"]')
    expect(chip).to_contain_text(f"cat{counts['cat']}")
    expect(_tiles(page)).to_have_count(extractor.count())
    chip.click()
    expect(chip).to_have_attribute("aria-pressed", "true")
    expect(_tiles(page)).to_have_count(counts["cat"])
    assert set(_filenames(page)) == {r.filename for r in extractor.list(objects="cat")}
    assert "objects=cat" in page.url
    _search(page, "a drink")  # the filter applies to search too
    assert set(_filenames(page)) <= {r.filename for r in extractor.list(objects="cat")}
    chip.click()
    expect(chip).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#results")).to_have_attribute("data-query", "a drink")
    assert "objects=" not in page.url


# -- duplicates review (before uploads add more pictures) --------------------------------------------


def test_duplicates_review_removes_the_copies_and_their_files(page: Any, base: str, root: Path,
                                                              extractor: Extractor) -> None:
    before = {r.id: r for r in extractor.list(limit=1000)}
    copies = {str(root.resolve() / "dups" / n) for n in ("chelsea-copy.jpg", "coffee-small.jpg")}
    page.goto(f"{base}/?view=duplicates")
    page.get_by_role("button", name="Find duplicates").click()
    groups = page.locator("#dup-groups fieldset")
    expect(groups).to_have_count(2)
    for i in range(2):  # side by side, the first indexed (the original) chosen to keep
        expect(groups.nth(i).locator(".member")).to_have_count(2)
        expect(groups.nth(i).locator("input[type=radio]").first).to_be_checked()
    _shot(page, "duplicates")
    page.locator("#dup-delete-files").check()
    page.get_by_role("button", name="Review changes").click()
    summary = page.locator("#dup-summary-text li")
    expect(summary).to_have_count(2)
    assert set(summary.all_text_contents()) == copies
    assert extractor.count() == len(before)  # the dry run changed nothing
    page.get_by_role("button", name="Apply").click()
    page.locator("#confirm").get_by_role("button", name="Remove and delete files").click()
    expect(page.locator("#dup-status")).to_have_text(re.compile("Removed 2 records and their files"))
    after = {r.id: r for r in extractor.list(limit=1000)}
    gone = set(before) - set(after)
    assert {before[i].path for i in gone} == copies and set(after) <= set(before)
    assert not any(Path(p).exists() for p in copies)
    assert all(Path(r.path).exists() for r in after.values())


# -- adding images ---------------------------------------------------------------------------------


def test_upload_by_picker_and_drop_then_delete_in_the_detail_view(page: Any, base: str, root: Path, tmp_path: Path,
                                                                   extractor: Extractor) -> None:
    picture = tmp_path / "my cat.jpg"
    with Image.open(root / "photos" / "chelsea.jpg") as im:
        im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).rotate(8).save(picture, quality=85)
    dropped = tmp_path / "dropped.jpg"
    with Image.open(root / "photos" / "rocket.jpg") as im:
        im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(dropped, quality=85)
    page.goto(f"{base}/?view=add")
    page.locator("#file-input").set_input_files(str(picture))  # the file picker
    item = page.locator('#uploads li[data-filename="my cat.jpg"]')
    expect(item).to_have_attribute("data-state", "done")
    expect(item.locator("progress")).to_have_attribute("value", "1")
    expect(item).to_contain_text("uploads/my_cat.jpg")
    assert (root / "uploads" / "my_cat.jpg").read_bytes() == picture.read_bytes()
    record = extractor.get(item.get_attribute("data-image-id"))
    assert record.filename == "my_cat.jpg" and "cat" in record.objects
    transfer = page.evaluate_handle("""([name, bytes]) => {
        const dt = new DataTransfer();
        dt.items.add(new File([new Uint8Array(bytes)], name, { type: "image/jpeg" }));
        return dt;
    }""", ["dropped.jpg", list(dropped.read_bytes())])
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": transfer})  # drag and drop
    item = page.locator('#uploads li[data-filename="dropped.jpg"]')
    expect(item).to_have_attribute("data-state", "done")
    dropped_id = item.get_attribute("data-image-id")
    assert (root / "uploads" / "dropped.jpg").read_bytes() == dropped.read_bytes()
    # newest first in the browse view; delete it, record and file, from the detail view
    page.goto(base)
    first = _tiles(page).first
    expect(first).to_have_attribute("data-image-id", dropped_id)
    first.locator("button").click()
    expect(page.locator("#detail-title")).to_have_text("dropped.jpg")
    page.get_by_role("button", name="Delete…").click()
    confirm = page.locator("#confirm")
    expect(confirm).to_contain_text("Delete dropped.jpg?")
    expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()  # the safe choice first
    confirm.get_by_role("button", name="Remove and delete the file").click()
    expect(page.locator(f'#results [data-image-id="{dropped_id}"]')).to_have_count(0)
    assert not (root / "uploads" / "dropped.jpg").exists()
    with pytest.raises(RecordNotFoundError):
        extractor.get(dropped_id)
    assert (root / "uploads" / "my_cat.jpg").exists() and extractor.get(record.id)


def test_index_a_folder_with_live_progress_to_100(page: Any, base: str, root: Path, extractor: Extractor) -> None:
    folder = root / "more"
    folder.mkdir()
    for name in ("astronaut", "rocket", "hubble_deep_field"):
        with Image.open(root / "photos" / f"{name}.jpg") as im:
            im.rotate(90, expand=True).save(folder / f"{name}-turned.jpg", quality=85)
    events: list[dict[str, Any]] = []

    def on_socket(ws: Any) -> None:
        if ws.url.endswith("/ws/processing"):
            ws.on("framereceived", lambda frame: events.append(__import__("json").loads(frame)))

    page.on("websocket", on_socket)
    page.goto(f"{base}/?view=add")
    expect(page.locator("#tasks")).to_be_visible()
    page.locator("#folder").fill("more")
    page.get_by_role("button", name="Index").click()
    run = page.locator("#index-run")
    expect(run).to_have_attribute("data-status", "completed")
    expect(page.locator("#index-progress")).to_have_attribute("value", "100")
    expect(page.locator("#index-progress-text")).to_contain_text("3 processed, 0 skipped, 0 failed")
    task_id = run.get_attribute("data-task-id")
    row = page.locator(f'#tasks tr[data-task-id="{task_id}"]')
    expect(row).to_have_attribute("data-status", "completed")
    expect(row).to_contain_text(str(folder.resolve()))
    _shot(page, "add")
    progress = [e["task"]["progress"] for e in events if e.get("task_id") == task_id]
    assert progress and progress[-1] == 100.0 and progress == sorted(progress)  # live, from /ws/processing
    indexed = {r.filename for r in extractor.list(limit=1000)}
    assert {f"{n}-turned.jpg" for n in ("astronaut", "rocket", "hubble_deep_field")} <= indexed


def test_pages_load_as_the_grid_scrolls(browser: Any, base: str, extractor: Extractor) -> None:
    """One image per page (``limit=1`` in the URL) on a short window: the first pages fill the
    screen, the rest come as the grid is scrolled to its end, newest first, none twice."""
    requests: list[str] = []
    page = _page(browser, base, requests, viewport={"width": 390, "height": 300})
    try:
        page.goto(f"{base}/?limit=1")
        expect(_tiles(page).first).to_be_visible()
        total = extractor.count()
        counts = [-1]

        def settled() -> bool:  # the same number of tiles twice, 300 ms apart, and nothing loading
            page.wait_for_timeout(300)
            counts.append(_tiles(page).count())
            return counts[-1] == counts[-2] and page.locator("#results").get_attribute("aria-busy") is None

        wait_for(settled, timeout=30)
        assert 0 < counts[-1] < total  # not everything at once
        for _ in range(3 * total):  # bounded: each scroll loads at least one more page
            if _tiles(page).count() == total and page.locator("#more").is_hidden():  # the end is known
                break
            page.locator("#sentinel").scroll_into_view_if_needed()
            page.wait_for_timeout(100)
        ids = [t.get_attribute("data-image-id") for t in _tiles(page).all()]
        assert ids == [r.id for r in reversed(extractor.list(limit=1000))]
        expect(page.locator("#more")).to_be_hidden()
        offsets = sorted(int(m) for u in requests for m in re.findall(r"/api/v1/images/\?.*offset=(\d+)", u))
        assert offsets[: total] == list(range(total))
    finally:
        page.context.close()
    _assert_same_origin(requests, base)


# -- the whole app: API key, phone size, the origin -----------------------------------------------------


def test_with_an_api_key_the_app_asks_once_and_uses_it(browser: Any, extractor: Extractor, root: Path) -> None:
    from imgctx.server import create_app

    settings = ServerSettings.from_values(allowed_roots=[root], api_key=API_KEY)
    with _serve(create_app(extractor=extractor, server_settings=settings)) as url:
        requests: list[str] = []
        page = _page(browser, url, requests)
        try:
            page.goto(url)
            key = page.locator("#key-dialog")
            expect(key).to_be_visible()
            page.locator("#key-input").fill("wrong")
            page.keyboard.press("Enter")
            expect(page.locator("#key-message")).to_contain_text("not accepted")
            page.locator("#key-input").fill(API_KEY)
            page.keyboard.press("Enter")
            expect(key).to_be_hidden()
            expect(_tiles(page).first.locator("img")).to_have_attribute("src", re.compile("^blob:"))
            _search(page, "a cat")  # the WebSocket carries the key too
            assert _filenames(page)[0] in {r.filename for r in extractor.list(objects="cat")}
            page.reload()
            expect(page.locator("#results")).to_have_attribute("data-query", "a cat")
            expect(key).to_be_hidden()  # asked once: the key is remembered
        finally:
            page.context.close()
        _assert_same_origin(requests, url)


def test_phone_sized_window_and_no_request_leaves_the_origin(browser: Any, base: str) -> None:
    requests: list[str] = []
    page = _page(browser, base, requests, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    try:
        for view in ("search", "add", "duplicates"):
            page.goto(f"{base}/?view={view}")
            expect(page.locator(f'section[data-view="{view}"]')).to_be_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.goto(f"{base}/?q=a+cat")
        expect(page.locator("#results")).to_have_attribute("data-query", "a cat")
        box = _tiles(page).first.bounding_box()
        assert box is not None and box["width"] < 390 / 2  # at least two columns
        _shot(page, "phone")
        _tiles(page).first.locator("button").click()
        expect(page.locator("#detail")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        page.context.close()
    assert any("/ws/search" in u for u in requests) and any("/thumbnail" in u for u in requests)
    _assert_same_origin(requests, base)
