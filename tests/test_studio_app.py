"""The studio app without a browser: access rules, paths, uploads, actions, the data endpoint.

Starlette's TestClient runs the real app in-process against real folders; the CLI verbs run as a
user runs them. Every security rule of the page is tried here.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.helpers.daemon_harness import facedrop, speech_clip, write_config
from watcher.config import Config, load_config
from watcher.outbox import Outbox
from watcher.sqlite_queue import SqliteQueue
from watcher.status import status_report
from watcher.studio import auth
from watcher.studio.app import build_app
from watcher.studio.auth import Guard, load_or_create_token
from watcher.studio.files import OutsideError, resolve_inside
from watcher.studio.uploads import TooLargeError, UploadLimits

POSTS = ("/jobs/cancel", "/results/retry", "/results/delete", "/submit", "/login")
VIDEO = bytes(range(256)) * 40


@pytest.fixture
def config(tmp_path: Path) -> Config:
    cfg = load_config(write_config(tmp_path / "root"))
    for path in (cfg.paths.inbox, cfg.paths.outbox, cfg.paths.state):
        path.mkdir(parents=True, exist_ok=True)
    return cfg


def finished_job(config: Config, name: str, state: str = "done") -> Path:
    """An outbox folder as the daemon leaves it (status, video, poster, input/)."""
    folder = config.paths.outbox / name
    (folder / "input").mkdir(parents=True)
    Outbox(config.paths.outbox).write_status(folder, state, job=name, attempt=1,
                                             video=f"{name}.mp4")
    (folder / f"{name}.mp4").write_bytes(VIDEO)
    (folder / "poster.jpg").write_bytes(b"\xff\xd8jpeg")
    if state == "failed":
        (folder / "error.txt").write_text("Error: the job was cancelled\n")
    return folder


def client_for(config: Config, guard: Guard | None = None,
               limits: UploadLimits | None = None) -> TestClient:
    return TestClient(build_app(config, guard or Guard(None), limits),
                      base_url="http://127.0.0.1:8765", follow_redirects=False)


@pytest.fixture
def client(config: Config) -> Iterator[TestClient]:
    with client_for(config) as c:
        yield c


def csrf(client: TestClient) -> str:
    html = client.get("/").text
    return html.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def test_no_endpoint_changes_state_on_get(config: Config, client: TestClient) -> None:
    folder = finished_job(config, "one", "failed")
    before = sorted(p.name for p in folder.iterdir())
    for path in POSTS:
        assert client.get(path, params={"job": "one", "confirm": "yes"}).status_code in (405, 200)
    assert client.get("/jobs/cancel").status_code == 405
    assert client.get("/results/delete", params={"job": "one", "confirm": "yes"}).status_code \
        == 405
    confirm = client.get("/result/one/delete")  # the confirmation page only asks
    assert confirm.status_code == 200 and "Delete one?" in confirm.text
    assert sorted(p.name for p in folder.iterdir()) == before
    assert list(config.paths.inbox.iterdir()) == []


def test_forms_need_the_csrf_value_and_the_same_origin(config: Config,
                                                       client: TestClient) -> None:
    folder = finished_job(config, "one")
    form = {"job": "one", "confirm": "yes"}
    assert client.post("/results/delete", data=form).status_code == 403
    assert client.post("/results/delete", data={**form, "csrf": "0" * 64}).status_code == 403
    token = csrf(client)
    cross = client.post("/results/delete", data={**form, "csrf": token},
                        headers={"origin": "http://evil.example"})
    assert cross.status_code == 403 and folder.is_dir()
    unconfirmed = client.post("/results/delete", data={"job": "one", "csrf": token})
    assert unconfirmed.status_code == 400 and folder.is_dir()
    done = client.post("/results/delete", data={**form, "csrf": token})
    assert done.status_code == 303 and not folder.exists()
    note = client.get(done.headers["location"])
    assert "deleted the outbox folder one" in note.text
    forged = client.get("/?did=forged&job=Your+account+is+locked")
    assert "Your account is locked" not in forged.text


def test_loopback_mode_answers_only_loopback_host_names(client: TestClient) -> None:
    assert client.get("/api/status").status_code == 200
    rebound = client.get("/api/status", headers={"host": "evil.example:8765"})
    assert rebound.status_code == 400


@pytest.mark.parametrize("path", [
    "/files/one/..%2F..%2Fconfig.yaml",
    "/files/%2E%2E/config.yaml",
    "/files/one/%2Fetc%2Fpasswd",
    "/files/one/input%2F..%2F..%2F..%2Fconfig.yaml",
    "/files/one/.hidden",
    "/files/one/a%5C..%5Cb",
    "/files/one/link.txt",
    "/files/one/input/linkdir/secret.txt",
])
def test_paths_outside_the_outbox_are_refused(config: Config, client: TestClient,
                                              path: str) -> None:
    folder = finished_job(config, "one")
    secret = config.paths.state / "secret.txt"
    secret.write_text("never served")
    (folder / ".hidden").write_text("hidden")
    (folder / "link.txt").symlink_to(secret)
    (folder / "input" / "linkdir").symlink_to(config.paths.state)
    response = client.get(path)
    assert response.status_code == 403
    assert "never served" not in response.text and "paths:" not in response.text


def test_a_linked_outbox_folder_is_not_served(config: Config, client: TestClient) -> None:
    (config.paths.state / "x.txt").write_text("never served")
    (config.paths.outbox / "linked").symlink_to(config.paths.state)
    assert client.get("/files/linked/x.txt").status_code == 404
    assert client.get("/result/linked").status_code == 404


def test_resolve_inside_keeps_to_its_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "f.txt").write_text("ok")
    assert resolve_inside(root, "a/f.txt") == (root / "a" / "f.txt").resolve()
    for bad in ("", "/etc/passwd", "../x", "a/../../x", "a/../a/f.txt", "a\\f.txt", "a/\0", "a"):
        with pytest.raises(OutsideError):
            resolve_inside(root, bad)
    with pytest.raises(FileNotFoundError):
        resolve_inside(root, "a/missing.txt")


def test_the_video_answers_range_requests(config: Config, client: TestClient) -> None:
    finished_job(config, "one")
    part = client.get("/files/one/one.mp4", headers={"range": "bytes=1000-1999"})
    assert part.status_code == 206
    assert part.content == VIDEO[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(VIDEO)}"
    whole = client.get("/files/one/one.mp4")
    assert whole.status_code == 200 and whole.content == VIDEO
    assert whole.headers["x-content-type-options"] == "nosniff"


def _files(photo: bytes, voice: bytes,
           photo_name: str = "face.png") -> dict[str, tuple[str, bytes]]:
    return {"photo": (photo_name, photo), "voice": ("voice.wav", voice)}


def test_upload_limits_hold_per_file_and_per_request(config: Config, astronaut_path: Path,
                                                     speech_path: Path, tmp_path: Path) -> None:
    voice = speech_clip(speech_path, tmp_path / "v.wav", 1.0).read_bytes()
    photo = astronaut_path.read_bytes()
    limits = UploadLimits(max_file_bytes=len(voice) + 10, max_request_bytes=10 * len(photo))
    with client_for(config, limits=limits) as c:
        big = c.post("/submit", data={"csrf": csrf(c)}, files=_files(photo, voice))
        assert big.status_code == 413 and "per file" in big.text
    limits = UploadLimits(max_file_bytes=10 * len(photo), max_request_bytes=len(photo) // 2)
    with client_for(config, limits=limits) as c:
        big = c.post("/submit", data={"csrf": csrf(c)}, files=_files(photo, voice))
        assert big.status_code == 413 and "per submission" in big.text
    with pytest.raises(TooLargeError, match="did not say how large"):
        limits.check_request(None)
    with client_for(config) as c:  # a button's form is small: a big one is refused unread
        folder = finished_job(config, "one", "failed")
        padded = c.post("/results/retry", data={"csrf": csrf(c), "job": "one"},
                        files={"pad": ("pad.bin", b"x" * 100_000)})
        assert padded.status_code == 413 and folder.is_dir()
    assert list(config.paths.inbox.iterdir()) == []


def test_a_bad_photo_gets_the_daemons_message_at_once(config: Config, client: TestClient,
                                                      speech_path: Path, tmp_path: Path) -> None:
    voice = speech_clip(speech_path, tmp_path / "v.wav", 1.0).read_bytes()
    bad = client.post("/submit", data={"csrf": csrf(client)},
                      files=_files(b"this is text, not a PNG\n", voice))
    assert bad.status_code == 400
    assert "the file is not an image facedrop can read" in bad.text
    assert "File: face.png" in bad.text  # named as the user knows it, not our staging path
    wrong = client.post("/submit", data={"csrf": csrf(client)},
                        files=_files(voice, voice, photo_name="face.wav"))
    assert wrong.status_code == 400 and "face photo must be one of" in wrong.text
    assert list(config.paths.inbox.iterdir()) == []  # no job, no staging folder left


def test_a_submission_lands_complete_with_its_settings(config: Config, client: TestClient,
                                                       astronaut_path: Path, speech_path: Path,
                                                       tmp_path: Path) -> None:
    voice = speech_clip(speech_path, tmp_path / "v.wav", 1.0).read_bytes()
    ok = client.post("/submit", data={"csrf": csrf(client), "name": "web", "engine": "off",
                                      "enhance": "true"},
                     files=_files(astronaut_path.read_bytes(), voice))
    assert ok.status_code == 200 and "Submitted web" in ok.text
    assert [p.name for p in config.paths.inbox.iterdir()] == ["web"]
    job = config.paths.inbox / "web"
    assert sorted(p.name for p in job.iterdir()) == ["face.png", "job.yaml", "voice.wav"]
    assert "lipsync: false" in (job / "job.yaml").read_text()
    assert "enhance: true" in (job / "job.yaml").read_text()


def test_a_driving_clip_goes_with_the_job(config: Config, client: TestClient,
                                          astronaut_path: Path, speech_path: Path,
                                          tmp_path: Path) -> None:
    from tests.helpers.clips import make_clip

    voice = speech_clip(speech_path, tmp_path / "v.wav", 1.0).read_bytes()
    clip = make_clip(tmp_path / "nod.mp4", astronaut_path, 6).read_bytes()
    ok = client.post("/submit", data={"csrf": csrf(client), "name": "driven"},
                     files={**_files(astronaut_path.read_bytes(), voice),
                            "driving": ("nod.mp4", clip)})
    assert ok.status_code == 200, ok.text
    job = config.paths.inbox / "driven"
    assert (job / "nod.mp4").read_bytes() == clip
    assert "driving: nod.mp4" in (job / "job.yaml").read_text()
    bad = client.post("/submit", data={"csrf": csrf(client)},
                      files={**_files(astronaut_path.read_bytes(), voice),
                             "driving": ("nod.gif", clip)})
    assert bad.status_code == 400 and "driving video must be one of" in bad.text


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return out.getvalue()


def test_a_job_zip_is_checked_then_put_in_the_inbox(config: Config, client: TestClient,
                                                    astronaut_path: Path, speech_path: Path,
                                                    tmp_path: Path) -> None:
    voice = speech_clip(speech_path, tmp_path / "v.wav", 1.0).read_bytes()
    evil = _zip({"../face.png": astronaut_path.read_bytes(), "voice.wav": voice,
                 "job.yaml": b""})
    refused = client.post("/submit", data={"csrf": csrf(client)},
                          files={"zip": ("evil.zip", evil)})
    assert refused.status_code == 400 and "would be unpacked outside the job folder" in refused.text
    assert list(config.paths.inbox.iterdir()) == []
    good = _zip({"face.png": astronaut_path.read_bytes(), "voice.wav": voice, "job.yaml": b""})
    for _ in range(2):  # the second one gets its own name: nothing is replaced
        ok = client.post("/submit", data={"csrf": csrf(client)},
                         files={"zip": ("take.zip", good)})
        assert ok.status_code == 200, ok.text
    assert sorted(p.name for p in config.paths.inbox.iterdir()) == ["take (2).zip", "take.zip"]
    assert (config.paths.inbox / "take.zip").read_bytes() == good


def test_the_token_is_made_once_and_kept_private(tmp_path: Path) -> None:
    token, made = load_or_create_token(tmp_path / "state")
    assert made and len(token) >= 24
    path = tmp_path / "state" / auth.TOKEN_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o644)
    again, made_again = load_or_create_token(tmp_path / "state")
    assert (again, made_again) == (token, False)
    assert path.stat().st_mode & 0o777 == 0o600


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lan_mode_needs_the_token_and_slows_down_wrong_ones(
        config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[bytes] = []
    real = auth.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    clock = Clock()
    guard = Guard("the-right-token", free=3, base_delay=2.0, clock=clock)
    finished_job(config, "one")
    with client_for(config, guard) as c:
        assert c.get("/").headers["location"] == "/login"
        assert c.get("/api/status").status_code == 401
        assert c.get("/files/one/one.mp4").status_code == 401
        assert c.post("/results/delete", data={"job": "one"}).status_code == 401
        login = c.get("/login").text
        token = login.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        for _ in range(3):
            assert c.post("/login", data={"csrf": token, "token": "guess"}).status_code == 401
        assert b"the-right-token" in compared  # the compare is hmac.compare_digest
        slowed = c.post("/login", data={"csrf": token, "token": "the-right-token"})
        assert slowed.status_code == 429 and "wait 2 s" in slowed.text
        clock.now += 2.1
        ok = c.post("/login", data={"csrf": token, "token": "the-right-token"})
        assert ok.status_code == 303
        cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert "the-right-token" not in cookie
        assert c.get("/api/status").status_code == 200
        assert (config.paths.outbox / "one").is_dir()


def test_retry_and_delete_are_cli_verbs_with_the_pages_rules(config: Config,
                                                             tmp_path: Path) -> None:
    cfg_file = config.source_files[-1]
    home = tmp_path / "home"
    home.mkdir()
    failed = finished_job(config, "broken", "failed")
    (failed / "input" / "job.yaml").write_text("fps: 10\n")
    (failed / "input" / "voice.wav").write_bytes(b"RIFF")
    done = finished_job(config, "fine")
    refused = facedrop(cfg_file, home, "retry", "fine")
    assert refused.returncode == 3 and "did not fail" in refused.stderr
    retried = facedrop(cfg_file, home, "retry", "broken")
    assert retried.returncode == 0, retried.stderr
    assert sorted(p.name for p in (config.paths.inbox / "broken").iterdir()) == [
        "job.yaml", "voice.wav"]
    escape = facedrop(cfg_file, home, "delete", "--yes", "../state")
    assert escape.returncode == 3 and "not an outbox folder name" in escape.stderr
    asked = facedrop(cfg_file, home, "delete", "fine")  # no tty: nobody can confirm
    assert asked.returncode == 3 and "--yes" in asked.stderr and done.is_dir()
    deleted = facedrop(cfg_file, home, "delete", "--yes", "fine")
    assert deleted.returncode == 0, deleted.stderr
    assert not done.exists() and failed.is_dir()
    cancel = facedrop(cfg_file, home, "cancel", "nosuchjob")
    assert cancel.returncode == 3 and "no queued or running job" in cancel.stderr


def test_status_pages_the_history_newest_first(config: Config) -> None:
    queue = SqliteQueue(config.paths.state)
    try:
        for i in range(25):
            job = queue.enqueue(f"job{i:02d}", f"s/job{i:02d}", f"job{i:02d}")
            queue.take(job.claimed_at + 1)
            queue.done(job.id, video="v.mp4", realtime_factor=1.0)
        queue.enqueue("waiting", "s/waiting", "waiting")
    finally:
        queue.close()
    first = status_report(config.paths.state, config.paths.inbox, 10)["jobs"]
    assert [j["name"] for j in first["finished"]] == [f"job{i:02d}" for i in range(24, 14, -1)]
    assert first["more"] and [j["name"] for j in first["queued"]] == ["waiting"]
    second = status_report(config.paths.state, config.paths.inbox, 10,
                           before=first["more"][0]["before"])["jobs"]
    assert [j["name"] for j in second["finished"]] == [f"job{i:02d}" for i in range(14, 4, -1)]
    last = status_report(config.paths.state, config.paths.inbox, 10,
                         before=second["more"][0]["before"])["jobs"]
    assert [j["name"] for j in last["finished"]] == [f"job{i:02d}" for i in range(4, -1, -1)]
    assert not last["more"]
    (config.paths.inbox / "a").mkdir()
    (config.paths.inbox / "b").mkdir()
    page = status_report(config.paths.state, config.paths.inbox, 1, inbox_offset=1,
                         inbox_limit=5)
    assert [e["name"] for e in page["inbox"]] == ["b"] and page["inbox_total"] == 2


def test_the_data_endpoint_is_status_json(config: Config, client: TestClient) -> None:
    queue = SqliteQueue(config.paths.state)
    try:
        for name in ("one", "two"):
            job = queue.enqueue(name, f"s/{name}", name)
            queue.take(job.claimed_at + 1)
            queue.done(job.id, video=f"{name}.mp4", realtime_factor=1.0)
    finally:
        queue.close()
    finished_job(config, "one")
    data = client.get("/api/status").json()
    report = json.loads(json.dumps(status_report(config.paths.state, config.paths.inbox, 12,
                                                 outbox=config.paths.outbox, inbox_limit=50)))
    shown = {j["name"]: (j.pop("poster"), j.pop("present")) for j in data["jobs"]["finished"]}
    assert shown == {"one": (True, True), "two": (False, False)}  # the page's own two stats
    assert data == report  # the same reader, the same data
    assert [j["name"] for j in data["jobs"]["finished"]] == ["two", "one"]


def test_the_page_shows_why_it_is_paused_the_fleet_and_the_queue() -> None:
    from watcher.studio import render

    report = {
        "daemon": {"running": True, "pid": 42},
        "paused": [{"kind": "weights", "reason": "the model weights are missing",
                    "fix": "run 'facedrop weights fetch'"}],
        "inbox": [{"name": "<b>odd</b>", "verdict": "waiting", "reason": "still copying"}],
        "inbox_total": 501, "inbox_unlisted": 500,
        "fleet": {"error": "", "workers": [{"id": "gpu-1", "host": "box", "device": "cuda:0",
                                           "state": "busy", "job": "take1", "stage": "render",
                                           "progress": 0.5, "heartbeat": 0}]},
        "jobs": {"running": [{"id": 1, "name": "take1", "outbox": "take1", "stage": "render",
                              "progress": 0.5, "attempts": 1, "seconds": 20.0}],
                 "queued": [{"id": 2, "name": "take2", "outbox": "take2", "attempts": 0,
                             "seconds": 0.0},
                            {"id": 3, "name": "take3", "outbox": "take3", "attempts": 1,
                             "seconds": 0.0}],
                 "finished": [{"id": 0, "name": "take0", "outbox": "take0", "state": "done",
                               "seconds": 120.0, "quality": None, "poster": False,
                               "finished_at": 0, "present": True},
                              {"id": -1, "name": "gone", "outbox": "gone (2)", "state": "done",
                               "seconds": 1.0, "quality": None, "poster": False,
                               "finished_at": 0, "present": False}],
                 "more": []},
    }
    html = render.live(report, "c", before=None, inbox_offset=0)
    assert "the model weights are missing" in html and "run &#x27;facedrop weights fetch&#x27;" \
        in html
    assert "gpu-1" in html and "cuda:0" in html and "Workers" in html
    assert "&lt;b&gt;odd&lt;/b&gt;" in html and "<b>odd</b>" not in html  # escaped
    assert "500 more entries the daemon counts" in html
    positions = re.findall(r"<tr><td>(\d)</td><td><a href=\"/result/(take\d)\"", html)
    assert positions == [("1", "take2"), ("2", "take3")]
    # take0 took 2 min, take1 has run 20 s: take2 starts in about 100 s, take3 2 min later
    assert "about 2 min" in html and "about 4 min" in html
    assert "not scored" in html
    assert "the outbox folder gone (2) was deleted" in html
    assert 'href="/result/gone' not in html  # no link to a folder that is not there


def test_serve_says_when_its_port_is_taken(config: Config, tmp_path: Path) -> None:
    import socket

    home = tmp_path / "home"
    home.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = facedrop(config.source_files[-1], home, "serve", "--port", str(port))
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "--port" in result.stderr
    assert "Traceback" not in result.stderr


def test_lan_mode_comes_from_the_host_flag_or_the_config(tmp_path: Path) -> None:
    from pipeline.errors import ConfigError
    from watcher.commands.studio import is_loopback

    config = load_config(write_config(tmp_path / "a", studio={"host": "0.0.0.0", "port": 9000}))
    assert (config.studio.host, config.studio.port) == ("0.0.0.0", 9000)
    assert load_config(write_config(tmp_path / "b")).studio.host == "127.0.0.1"  # the default
    assert [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "192.168.1.5",
                                     "studio.local")] == [True, True, True, False, False, False]
    with pytest.raises(ConfigError, match="studio.port"):
        load_config(write_config(tmp_path / "c", studio={"port": "high"}))
