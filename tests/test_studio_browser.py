"""The studio page in a real browser: Debian's chromium driven by Playwright (never downloaded).

One real ``facedrop watch`` (the stand-in pipeline, with a quality verdict and poster) and one
real ``facedrop serve`` for the module, one browser for the module. Screenshots at 1280 and 390 px
go to ``tmp/artifacts/studio`` (or ``$FACEDROP_ARTIFACTS``), never into git.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.helpers.daemon_harness import (
    REPO,
    DaemonProcess,
    facedrop,
    finished,
    make_job,
    read_status,
    speech_clip,
    wait_for,
    write_config,
)
from tests.helpers.studio_harness import ServeProcess

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
TIMEOUT = 60
ARTIFACTS = Path(os.environ.get("FACEDROP_ARTIFACTS", REPO / "tmp" / "artifacts" / "studio"))


class Site:
    def __init__(self, root: Path, config: Path, home: Path, serve: ServeProcess,
                 daemon: DaemonProcess, voice: Path, face: Path, long_voice: Path) -> None:
        self.root, self.config, self.home = root, config, home
        self.serve, self.daemon, self.voice, self.face = serve, daemon, voice, face
        self.long_voice = long_voice  # 5.9 s: a "slow" job runs about 19 s unless cancelled
        self.outbox = root / "outbox"
        self.inbox = root / "inbox"

    @property
    def base(self) -> str:
        return self.serve.base


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, astronaut_path: Path,
         speech_path: Path) -> Iterator[Site]:
    top = tmp_path_factory.mktemp("studio")
    root, home = top / "root", top / "home"
    home.mkdir()
    config = write_config(root)
    voice = speech_clip(speech_path, top / "voice.wav", 1.5)
    daemon = DaemonProcess(config, home, top / "daemon.log", FACEDROP_TEST_QUALITY="1",
                           FACEDROP_TEST_CHUNK_SLEEP="1.0", FACEDROP_TEST_SLOW_JOBS="slow")
    serve = ServeProcess(config, home, top / "serve.log")
    try:
        yield Site(root, config, home, serve, daemon, voice, astronaut_path, speech_path)
    finally:
        serve.stop()
        daemon.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT * 1000)
    p = context.new_page()
    try:
        yield p
    finally:
        context.close()


def shoot(page: Page, name: str) -> None:
    """Full-page screenshots at 1280 and 390 px wide."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def no_image_without_alt(page: Page) -> None:
    missing = page.eval_on_selector_all("img", "els => els.filter(e => !e.alt).map(e => e.src)")
    assert missing == []


def test_submit_photo_and_voice_then_see_poster_verdict_and_seek_the_video(
        site: Site, page: Page) -> None:
    page.goto(site.base + "/")
    expect(page.get_by_role("heading", name="Submit a job")).to_be_visible()
    expect(page.get_by_text(re.compile(r"Daemon running \(pid \d+\)"))).to_be_visible()
    page.set_input_files("input[name=photo]", str(site.face))
    page.set_input_files("input[name=voice]", str(site.voice))
    page.fill("input[name=name]", "hello-web")
    page.select_option("select[name=enhance]", "false")
    page.get_by_role("button", name="Submit", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("Submitted hello-web")
    done = wait_for(lambda: finished(site.outbox / "hello-web"), TIMEOUT, "the job in the outbox")
    assert done["state"] == "done"
    # No reload: the live part shows the result, its poster and its verdict by itself.
    poster = page.get_by_alt_text("Poster frame of hello-web")
    expect(poster).to_be_visible(timeout=3000)  # the 2 s target, plus a request on a busy CI
    assert page.evaluate("img => img.complete && img.naturalWidth > 0", poster.element_handle())
    card = page.locator("article.result", has=page.get_by_role("link", name="hello-web"))
    expect(card.locator(".verdict")).to_have_text("check")
    expect(card).to_contain_text("lip sync is weak")
    no_image_without_alt(page)
    shoot(page, "index")

    ranges: list[int] = []
    page.on("response", lambda r: ranges.append(r.status) if r.url.endswith(".mp4") else None)
    page.get_by_role("link", name="hello-web").first.click()
    expect(page.get_by_role("heading", name="hello-web")).to_be_visible()
    expect(page.get_by_alt_text(re.compile("Preview sheet of hello-web"))).to_be_visible()
    expect(page.locator("pre")).to_contain_text("render")  # timing.log
    seek: dict[str, Any] = page.evaluate("""async () => {
        const v = document.getElementById('video');
        v.muted = true;
        if (v.readyState < 1)
            await new Promise(r => v.addEventListener('loadedmetadata', r, {once: true}));
        await v.play();
        const seeked = new Promise(r => v.addEventListener('seeked', r, {once: true}));
        v.currentTime = v.duration / 2;
        await seeked;
        return {duration: v.duration, time: v.currentTime, error: v.error && v.error.code,
                ready: v.readyState};
    }""")
    assert seek["error"] is None and seek["ready"] >= 2
    assert seek["duration"] == pytest.approx(1.5, abs=0.15)
    assert seek["time"] == pytest.approx(seek["duration"] / 2, abs=0.15)
    assert 206 in ranges  # the browser fetched byte ranges: seeking is served, not faked
    no_image_without_alt(page)
    shoot(page, "result")


def _tab_to(page: Page, selector: str, limit: int = 80) -> None:
    """Press Tab until the element matching ``selector`` has focus (keyboard-only use)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement === document.querySelector(s)", selector):
            return
    raise AssertionError(f"{selector} is not reachable with the Tab key")


def test_cancel_a_queued_job_by_keyboard_then_retry_and_delete_it(site: Site, page: Page) -> None:
    make_job(site.inbox, "slow", site.face, site.long_voice, "fps: 25\n")
    wait_for(lambda: (site.outbox / "slow").is_dir(), TIMEOUT, "slow to be claimed")
    make_job(site.inbox, "waiter", site.face, site.voice, "fps: 10\n")
    page.goto(site.base + "/")
    queue = page.locator("section", has=page.get_by_role("heading", name=re.compile("^Queue")))
    expect(queue.get_by_role("link", name="waiter")).to_be_visible()
    expect(page.locator("article.running")).to_contain_text("slow")
    expect(queue.locator("td").nth(3)).to_have_text(re.compile(r"next|about \d"))  # an estimate
    shoot(page, "queue")
    _tab_to(page, 'button[data-key="cancel-waiter"]')
    page.keyboard.press("Enter")
    # the form's POST redirects to the page again: let that navigation finish before the next
    # one (a goto while it is still loading is interrupted by it)
    page.wait_for_url(re.compile(r"did=cancel"), wait_until="load")
    wait_for(lambda: finished(site.outbox / "waiter"), TIMEOUT, "waiter to end")
    assert finished(site.outbox / "waiter")["state"] == "failed"
    assert "cancelled" in (site.outbox / "waiter" / "error.txt").read_text()
    assert not (site.outbox / "waiter" / "waiter.mp4").exists()  # it never ran

    page.goto(site.base + "/result/slow")  # the running job's own page, left open
    expect(page.locator("#live")).to_contain_text("running")
    expect(page.locator("#live progress")).to_be_visible()
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    assert page.request.post(site.base + "/jobs/cancel",
                             form={"csrf": token or "", "job": "slow"}).ok
    wait_for(lambda: finished(site.outbox / "slow"), TIMEOUT, "slow to stop")
    assert finished(site.outbox / "slow")["state"] == "failed"
    # The open page notices by itself and shows why it ended (error.txt).
    expect(page.locator("pre.wrap")).to_contain_text("cancelled", timeout=5000)
    expect(page.locator("#live")).to_contain_text("failed")

    page.goto(site.base + "/result/waiter")
    expect(page.locator("pre").first).to_contain_text("cancelled")  # error.txt
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status")).to_contain_text("submitted waiter again")
    assert "did=retry" in page.url  # redirected after the POST: a reload does not repeat it
    again = wait_for(lambda: finished(site.outbox / "waiter (2)"), TIMEOUT, "the retried job")
    assert again["state"] == "done"

    page.goto(site.base + "/result/waiter")
    page.get_by_role("link", name="Delete…").click()
    expect(page.get_by_role("heading", name="Delete waiter?")).to_be_visible()
    assert (site.outbox / "waiter").is_dir()  # the confirmation page changed nothing
    page.get_by_role("button", name="Delete it").click()
    expect(page.get_by_role("status")).to_contain_text("deleted the outbox folder waiter")
    assert not (site.outbox / "waiter").exists()
    assert (site.outbox / "waiter (2)").is_dir()
    expect(page.get_by_text("the outbox folder waiter was deleted")).to_be_visible()


def test_cancel_from_the_command_line_stops_a_running_job(site: Site) -> None:
    make_job(site.inbox, "slow", site.face, site.long_voice, "fps: 25\n")  # outbox "slow (2)"
    wait_for(lambda: (read_status(site.outbox / "slow (2)") or {}).get("state") == "running",
             TIMEOUT, "slow (2) to run")
    done = facedrop(site.config, site.home, "cancel", "slow")
    assert done.returncode == 0 and "cancelling slow (outbox folder slow (2))" in done.stdout
    wait_for(lambda: finished(site.outbox / "slow (2)"), TIMEOUT, "slow (2) to stop")
    assert finished(site.outbox / "slow (2)")["state"] == "failed"
    assert "cancelled" in (site.outbox / "slow (2)" / "error.txt").read_text()


def test_traversal_and_links_out_are_refused(site: Site, page: Page) -> None:
    (site.root / "secret.txt").write_text("do not serve")
    for path in ("/files/hello-web/..%2F..%2Fsecret.txt", "/files/..%2Fstate/studio-token",
                 "/files/hello-web/%2Fetc%2Fpasswd"):
        response = page.request.get(site.base + path)
        assert response.status == 403, path
        assert "do not serve" not in response.text()
    (site.outbox / "hello-web" / "link.txt").symlink_to(site.root / "secret.txt")
    response = page.request.get(site.base + "/files/hello-web/link.txt")
    assert response.status == 403 and "do not serve" not in response.text()


def test_lan_mode_needs_the_token(site: Site, browser: Browser, tmp_path: Path) -> None:
    lan = ServeProcess(site.config, site.home, tmp_path / "lan.log", host="0.0.0.0")
    try:
        token = (site.root / "state" / "studio-token").read_text().strip()
        assert token in lan.output()  # shown once, when it was made
        assert (site.root / "state" / "studio-token").stat().st_mode & 0o777 == 0o600
        context = browser.new_context(viewport={"width": 390, "height": 844})
        page = context.new_page()
        assert page.request.get(lan.base + "/api/status").status == 401
        assert page.request.get(lan.base + "/files/hello-web/poster.jpg").status == 401
        page.goto(lan.base + "/")
        expect(page.get_by_role("heading", name="This studio page needs its token")).to_be_visible()
        assert "Submit a job" not in page.content()
        page.fill("input[name=token]", "not-the-token")
        page.keyboard.press("Enter")
        expect(page.get_by_role("alert")).to_contain_text("That is not the token")
        shoot(page, "login")
        page.fill("input[name=token]", token)
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Submit a job")).to_be_visible()
        cookie = next(c for c in context.cookies() if c["name"] == "facedrop_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert token not in cookie["value"]
        assert page.request.get(lan.base + "/api/status").status == 200
        context.close()
    finally:
        lan.stop()


def test_a_file_dropped_on_a_box_goes_into_its_input(site: Site, page: Page) -> None:
    page.goto(site.base + "/")
    drop = page.evaluate_handle("""() => {
        const dt = new DataTransfer();
        dt.items.add(new File(['RIFF'], 'hello.wav', {type: 'audio/wav'}));
        return dt;
    }""")
    box = page.locator(".drop", has=page.locator("input[name=voice]"))
    box.dispatch_event("dragover", {"dataTransfer": drop})
    box.dispatch_event("drop", {"dataTransfer": drop})
    names = page.eval_on_selector("input[name=voice]", "i => [...i.files].map(f => f.name)")
    assert names == ["hello.wav"]
