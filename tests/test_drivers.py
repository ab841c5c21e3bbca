"""The driving library, the example-clip fetch and the ``facedrop drivers`` commands."""

from __future__ import annotations

import hashlib
import json
import urllib.error
from fractions import Fraction
from pathlib import Path

import pytest

from pipeline.errors import FacedropError, InputError
from pipeline.liveportrait.drivers import DriverLibrary, DrivingSource, resolve_driving
from pipeline.liveportrait.examples import ExampleClip, fetch_examples
from pipeline.liveportrait.motion_cache import MotionCache
from pipeline.liveportrait.template import save_template
from tests.helpers.clips import make_clip, random_motion
from watcher.cli import main

NTSC = Fraction(30000, 1001)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, astronaut_path: Path) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "talk.mp4", astronaut_path, 6)


def test_add_copies_and_describes(tmp_path: Path, clip: Path) -> None:
    lib = DriverLibrary(tmp_path / "drivers")
    d = lib.add(clip)
    assert d.name == "talk" and d.path.parent == tmp_path / "drivers"
    assert d.frames == 6 and d.fps == pytest.approx(30000 / 1001)
    assert d.sha256 == hashlib.sha256(clip.read_bytes()).hexdigest()
    assert d.path.read_bytes() == clip.read_bytes()
    assert not list((tmp_path / "drivers").glob(".*"))  # no temp file left behind
    assert lib.add(clip).sha256 == d.sha256  # same bytes again: no-op
    assert [x.name for x in lib.list()] == ["talk"]


def test_add_refuses_a_different_clip_under_a_taken_name(tmp_path: Path, clip: Path,
                                                         astronaut_path: Path) -> None:
    lib = DriverLibrary(tmp_path / "drivers")
    lib.add(clip, "calm")
    other = make_clip(tmp_path / "other.mp4", astronaut_path, 3)
    with pytest.raises(InputError, match="already in the library"):
        lib.add(other, "calm")
    with pytest.raises(InputError):
        lib.add(tmp_path / "missing.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(InputError):
        lib.add(bad)
    assert lib.names() == ["calm"]


def test_templates_can_be_added_and_resolve_prefers_the_job_folder(tmp_path: Path,
                                                                   clip: Path) -> None:
    lib = DriverLibrary(tmp_path / "drivers")
    save_template(random_motion(4), tmp_path / "wink.pkl")
    t = lib.add(tmp_path / "wink.pkl")
    assert t.is_template and t.frames == 4
    lib.add(clip, "calm")
    job = tmp_path / "job"
    job.mkdir()
    (job / "mine.mp4").write_bytes(clip.read_bytes())
    mine = resolve_driving("mine.mp4", lib, job_dir=job)
    assert (mine.path, mine.source) == (job / "mine.mp4", DrivingSource.JOB_FOLDER)
    assert resolve_driving("mine", lib, job_dir=job).path == job / "mine.mp4"  # NAME.mp4
    calm = resolve_driving("calm", lib, job_dir=job)
    assert (calm.path, calm.source) == (lib.root / "calm.mp4", DrivingSource.LIBRARY)
    wink = resolve_driving(None, lib, job_dir=job, default="wink")
    assert (wink.path, wink.source) == (lib.root / "wink.pkl", DrivingSource.DEFAULT)
    assert resolve_driving(job / "mine.mp4", lib, job_dir=job).path == job / "mine.mp4"
    with pytest.raises(InputError, match=r"no driving clip called 'nope' \(library: calm, wink\)"):
        resolve_driving("nope", lib, job_dir=job)
    with pytest.raises(InputError, match="no default"):
        resolve_driving(None, lib, job_dir=job)
    with pytest.raises(InputError, match="default driving clip 'gone' is not in the library"):
        resolve_driving(None, lib, default="gone")
    with pytest.raises(InputError, match="points outside the job folder"):
        resolve_driving("../calm.mp4", lib, job_dir=job)
    with pytest.raises(InputError, match="not a clip name"):
        resolve_driving("a/b", lib, job_dir=job)


def test_fetch_examples_verifies_and_adds(tmp_path: Path, clip: Path) -> None:
    data = clip.read_bytes()
    entry = ExampleClip("lp-test", clip.as_uri(), len(data), hashlib.sha256(data).hexdigest())
    lib = DriverLibrary(tmp_path / "drivers")
    (d,) = fetch_examples(lib, [entry])
    assert d.name == "lp-test" and d.path.read_bytes() == data
    assert fetch_examples(lib, [entry])[0].sha256 == d.sha256  # present: not downloaded again
    wrong = ExampleClip("lp-bad", clip.as_uri(), len(data), "0" * 64)
    with pytest.raises(FacedropError, match="could not download"):
        fetch_examples(lib, [wrong])
    assert lib.find("lp-bad") is None


def test_fetch_without_network_is_one_clear_error(tmp_path: Path) -> None:
    def offline(*args: object, **kwargs: object) -> object:
        raise urllib.error.URLError("Name or service not known")

    entry = ExampleClip("lp-x", "https://example.invalid/d0.mp4", 10, "0" * 64)
    with pytest.raises(FacedropError) as err:
        fetch_examples(DriverLibrary(tmp_path / "d"), [entry], opener=offline)
    text = err.value.user_message()
    assert "could not download the example driving clips" in text and "drivers add" in text


def test_cli_add_and_list(tmp_path: Path, clip: Path, capsys: pytest.CaptureFixture[str],
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    monkeypatch.setenv("COLUMNS", "200")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"paths:\n  drivers: {tmp_path / 'drivers'}\n  cache: {tmp_path / 'cache'}\n")
    assert main(["--config", str(cfg), "drivers", "add", str(clip), "--name", "calm"]) == 0
    assert "Added calm: 6 frames" in capsys.readouterr().out
    sha = hashlib.sha256(clip.read_bytes()).hexdigest()
    assert main(["--config", str(cfg), "drivers", "list"]) == 0
    out = capsys.readouterr().out
    assert "calm (default)  6  29.970  0.2 s  no\n" in out  # piped: one line per clip
    save_template(random_motion(2), MotionCache(tmp_path / "cache").path_for(sha, "v1"))
    assert main(["--config", str(cfg), "drivers", "list"]) == 0
    assert "calm (default)  6  29.970  0.2 s  yes\n" in capsys.readouterr().out
    assert main(["--config", str(cfg), "drivers", "add", str(tmp_path / "none.mp4")]) == 3


def test_cli_fetch_adds_clips_and_sets_the_default(tmp_path: Path, clip: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """No weights yet: the clips are added, the motion is left for first use, the default set."""
    import pipeline.liveportrait.examples as examples
    from watcher.config import load_config

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    data = clip.read_bytes()
    local = [ExampleClip("lp-local", clip.as_uri(), len(data), hashlib.sha256(data).hexdigest())]
    monkeypatch.setattr(examples, "EXAMPLE_CLIPS", local)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"paths:\n  drivers: {tmp_path / 'drivers'}\n  cache: {tmp_path / 'cache'}\n"
                   f"  weights: {tmp_path / 'weights'}\npipeline:\n  device: cpu\n")
    assert main(["--config", str(cfg), "drivers", "fetch"]) == 0
    out = capsys.readouterr().out
    assert "lp-local: 6 frames" in out and "Motion not extracted yet" in out
    assert (tmp_path / "drivers" / "lp-local.mp4").read_bytes() == data
    assert load_config(cfg).pipeline.default_driver == "lp-local"


def test_first_clip_added_becomes_the_default_and_list_marks_it(
        tmp_path: Path, clip: Path, astronaut_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The fix the 'no driving clip' message gives ('drivers add VIDEO') really fixes it."""
    from watcher.config import load_config

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.delenv("FACEDROP_CONFIG", raising=False)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"paths:\n  drivers: {tmp_path / 'drivers'}\n  cache: {tmp_path / 'cache'}\n")
    lib = DriverLibrary(tmp_path / "drivers")
    with pytest.raises(InputError) as err:
        resolve_driving(None, lib, default=load_config(cfg).pipeline.default_driver)
    assert "facedrop drivers add VIDEO" in err.value.fix

    assert main(["drivers", "add", str(clip), "--name", "calm", "--config", str(cfg)]) == 0
    assert "Default driving clip set to calm" in capsys.readouterr().out
    default = load_config(cfg).pipeline.default_driver
    assert default == "calm"
    assert resolve_driving(None, lib, default=default).path == lib.root / "calm.mp4"

    other = make_clip(tmp_path / "other.mp4", astronaut_path, 3)
    assert main(["drivers", "add", str(other), "--name", "nod", "--config", str(cfg)]) == 0
    assert "Default" not in capsys.readouterr().out  # the second clip does not take over
    assert load_config(cfg).pipeline.default_driver == "calm"

    assert main(["drivers", "list", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "calm (default)" in out and "nod (default)" not in out

    assert main(["drivers", "add", str(other), "--name", "nod", "--default",
                 "--config", str(cfg)]) == 0
    assert "Default driving clip set to nod" in capsys.readouterr().out
    assert load_config(cfg).pipeline.default_driver == "nod"

    assert main(["drivers", "list", "--json", "--config", str(cfg)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["default"] == "nod"
    assert {d["name"]: d["default"] for d in doc["drivers"]} == {"calm": False, "nod": True}
    assert {d["name"]: d["frames"] for d in doc["drivers"]} == {"calm": 6, "nod": 3}

    (tmp_path / "drivers" / "nod.mp4").unlink()  # the default is gone: the next clip takes over
    assert main(["drivers", "add", str(clip), "--name", "again", "--config", str(cfg)]) == 0
    assert load_config(cfg).pipeline.default_driver == "again"
