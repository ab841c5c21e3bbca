"""``facedrop bench --stage animate --batch``: a real cold render per batch size, each in its own
process, on random official-format LivePortrait checkpoints; one table row per batch size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.daemon_harness import cli_env, write_config


def _rows(out: str) -> dict[str, list[str]]:
    """Table body rows by their first cell (rich draws cells between vertical bars)."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("│┃").split("│")]
        if len(cells) == 4 and cells[0] and cells[0] != "batch":
            rows[cells[0]] = cells
    return rows


# two fresh processes, each loading torch and the five networks and rendering one 512 frame
# (~6 s on an idle 2-core CPU; minutes when the machine is shared): make test-slow runs it
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bench_prints_one_row_per_batch_size(model_weights_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "cfg", pipeline={"device": "cpu"})
    done = subprocess.run(
        [sys.executable, "-m", "watcher.cli", "bench", "--stage", "animate", "--batch", "1",
         "auto", "--frames", "1", "--weights-dir", str(model_weights_dir)],
        cwd=tmp_path, env=cli_env(config, tmp_path / "home", COLUMNS="100"),
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = _rows(done.stdout)
    assert set(rows) == {"1", "auto"}, done.stdout
    for _batch, used, ms, peak in rows.values():
        assert int(used) >= 1 and float(ms) > 0
        assert 200 < float(peak) < 64 * 1024  # MiB: torch and five networks, below 64 GiB
    assert rows["1"][1] == "1"  # a set batch is used as it is
    assert "auto picks " in done.stdout and "MiB free" in done.stdout


def test_batch_needs_the_animate_stage(tmp_path: Path) -> None:
    config = write_config(tmp_path / "cfg")
    done = subprocess.run(
        [sys.executable, "-m", "watcher.cli", "bench", "--batch", "2"], cwd=tmp_path,
        env=cli_env(config, tmp_path / "home"), capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert done.returncode == 2 and "--stage animate" in done.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "watcher.cli", "bench", "--stage", "animate", "--batch", "0"],
        cwd=tmp_path, env=cli_env(config, tmp_path / "home"), capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert bad.returncode == 2 and "'0' is not auto or a positive integer" in bad.stderr


def test_lipsync_stage_figures_come_from_the_pipeline(model_weights_dir: Path, tmp_path: Path,
                                                      monkeypatch, capsys) -> None:
    """``--stage lipsync`` runs in this process: the real Wav2Lip stage on the example job."""
    from watcher.cli import main

    for var in ("FACEDROP_CONFIG", "XDG_CONFIG_HOME"):  # only this test's config file
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = write_config(tmp_path / "cfg", pipeline={"device": "cpu"})
    code = main(["--config", str(config), "bench", "--stage", "lipsync", "--json",
                 "--weights-dir", str(model_weights_dir)])
    assert code == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["title"].startswith("Lip sync on cpu")
    parts = ("landmarks (per distinct crop)", "mel", "generator", "blend", "total")
    assert all(figures[p] > 0 for p in parts)
    assert figures["total"] >= figures["generator"]
    assert figures["peak memory (MiB)"] > 100


def test_a_setup_problem_is_reported_once_not_per_batch_size(tmp_path: Path) -> None:
    """Without weights the first child fails: its message is printed once, the rest not run."""
    config = write_config(tmp_path / "cfg", pipeline={"device": "cpu"})
    empty = tmp_path / "no-weights"
    empty.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "watcher.cli", "bench", "--stage", "animate", "--batch", "1", "2",
         "auto", "--weights-dir", str(empty)],
        cwd=tmp_path, env=cli_env(config, tmp_path / "home", COLUMNS="100"),
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.count("Fix:") == 1, done.stderr


def test_the_quality_line_gives_ms_per_video_second_and_the_jobs_share() -> None:
    from watcher.commands.bench import quality_line

    stages = [{"name": "lipsync", "seconds": 4.5, "cache": "n/a"},
              {"name": "quality", "seconds": 0.2, "cache": "n/a"}]
    rec = {"frames": 150, "fps": 25.0, "total_seconds": 5.0, "stages": stages}
    assert quality_line(rec) == ("quality: 33 ms per video-second, 4.0% of the repeat-avatar job "
                                 "(target: at most 5%)")
    stages[1]["cache"] = "skipped"  # quality: false
    assert quality_line(rec) == ""


def test_motion_goes_alone_or_with_the_chain(tmp_path: Path) -> None:
    """``--motion voice`` is the voice stage's figures; with a stage it does not fit it is
    refused before anything loads."""
    config = write_config(tmp_path / "cfg")
    for args in (["--stage", "animate", "--motion", "voice"],
                 ["--stage", "voice", "--motion", "still"],
                 ["--lipsync", "wav2lip", "--motion", "still"]):
        done = subprocess.run(
            [sys.executable, "-m", "watcher.cli", "bench", *args], cwd=tmp_path,
            env=cli_env(config, tmp_path / "home"), capture_output=True, text=True, timeout=120,
            check=False,
        )
        assert done.returncode == 2, (args, done.stderr)
        assert "--motion goes alone (voice) or with --stage chain" in done.stderr


def test_the_per_second_line_gives_a_repeat_job_and_a_first_job() -> None:
    from watcher.commands.bench import per_second_line

    cold = {"stages": [{"name": "animate", "seconds": 40.0, "frames": 10},
                       {"name": "lipsync", "seconds": 3.0, "frames": 25}]}
    repeat = {"frames": 250, "fps": 25.0, "total_seconds": 20.0, "device": "cpu"}
    line = per_second_line({"cold": cold, "repeat": repeat})
    # repeat: 20 s for 10 s of video; first: 4 s per render x 25 fps + the repeat's 2 s
    assert line == ("per second of video (25 fps, cpu): repeat-avatar job 2.0 s; first job "
                    "(every frame a new render: 10 rendered in the warm-up at 4.00 s each) "
                    "about 102 s")
    cold["stages"][0]["frames"] = 0  # nothing rendered (all from the cache): no first-job figure
    assert per_second_line({"cold": cold, "repeat": repeat}) == ""
