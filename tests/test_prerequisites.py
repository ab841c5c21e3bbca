"""The first-run check: a bare ``facedrop run`` names every missing prerequisite at once, in the
order that fixes them (weights, then the driving clip), before anything is written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.chain.runner import Runner
from pipeline.prerequisites import JobNeeds, PrerequisitesError, missing, needed_weights, require
from pipeline.settings import PipelineSettings
from pipeline.weights.manifest import MANIFEST
from tests.conftest import EXAMPLE_JOB
from tests.helpers.clips import make_clip
from tests.helpers.daemon_harness import cli_env, write_config
from tests.helpers.settings import pipeline_settings


def _settings(tmp_path: Path, lipsync_model: str = "wav2lip") -> PipelineSettings:
    return pipeline_settings(tmp_path, device="cpu", lipsync_model=lipsync_model)


def _install(settings: PipelineSettings, names: set[str]) -> None:
    """Stand-in files at their pinned sizes (the check looks at presence only, loads nothing)."""
    for e in MANIFEST:
        if e.name in names or e.group in names:
            path = settings.weights_dir / e.relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as f:
                f.truncate(e.size or 1)


def test_bare_run_reports_every_gap_in_fixing_order(tmp_path: Path) -> None:
    """``facedrop run`` of the example job on a fresh install: weights first, then the clip
    (the config asks for clip motion; under ``auto`` a job without a clip gets still motion)."""
    config = write_config(tmp_path / "root", motion={"source": "clip"})
    home = tmp_path / "home"
    home.mkdir()
    env = cli_env(config, home)
    del env["FACEDROP_PIPELINE"]  # the real pipeline: its check, not the test stand-in's
    result = subprocess.run([sys.executable, "-m", "watcher.cli", "run", str(EXAMPLE_JOB)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 5, result.stderr
    err = result.stderr
    assert "Traceback" not in err
    assert "2 things are missing" in err
    weights, driving = err.index("1. model weights"), err.index("2. driving clip")
    assert weights < driving
    assert "facedrop weights fetch liveportrait wav2lip.pth landmarks " in err
    assert "facedrop weights import DIR" in err
    assert "facedrop drivers add VIDEO" in err[driving:]
    for e in MANIFEST:
        if e.group in ("liveportrait", "landmarks") or e.name == "wav2lip":
            assert e.relpath in err
    assert "wav2lip_gan" not in err and "GFPGAN" not in err  # not used by this job
    assert not (tmp_path / "root" / "outbox").exists()  # nothing written before the check


def test_gaps_close_one_by_one(tmp_path: Path, astronaut_path: Path) -> None:
    settings = _settings(tmp_path, lipsync_model="wav2lip_gan")
    needs = JobNeeds(lipsync=True, enhance=True)
    assert {e.name for e in needed_weights(settings, needs)} == {
        e.name for e in MANIFEST if e.group in ("liveportrait", "landmarks")
    } | {"wav2lip_gan", "GFPGANv1.4"}
    gaps = missing(settings, needs)
    assert [g.what.split(":")[0] for g in gaps][0].startswith("model weights")
    assert "weights fetch liveportrait wav2lip_gan.pth gfpgan landmarks " in gaps[0].fix
    assert len(gaps) == 2 and "no default clip" in gaps[1].what

    _install(settings, {"liveportrait", "landmarks", "wav2lip_gan"})
    (settings.weights_dir / "liveportrait/base_models/warping_module.pth").unlink()
    gaps = missing(settings, needs)
    assert gaps[0].what.endswith("missing: liveportrait/base_models/warping_module.pth, "
                                 "gfpgan/GFPGANv1.4.pth")
    assert "weights fetch warping_module.pth gfpgan " in gaps[0].fix
    # present but not the pinned size: the loader judges it (test checkpoints are smaller)
    (settings.weights_dir / "liveportrait/base_models/warping_module.pth").write_bytes(b"x")
    _install(settings, {"gfpgan"})
    gaps = missing(settings, needs)
    assert len(gaps) == 1 and gaps[0].what.startswith("driving clip")

    job = tmp_path / "job"
    job.mkdir()
    clip = make_clip(job / "talk.mp4", astronaut_path, 2)
    assert missing(settings, JobNeeds(lipsync=True, enhance=True, driving=clip, job_dir=job)) == []
    named = JobNeeds(driving="nod", job_dir=job)
    (gap,) = missing(settings, named)
    assert "no driving clip called 'nod'" in gap.what
    with pytest.raises(PrerequisitesError) as info:
        require(Runner(settings), named)
    assert info.value.exit_code == 5 and "1 thing is missing" in info.value.problem
    require(object(), named)  # a pipeline without the check is taken as ready
