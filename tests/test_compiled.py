"""``pipeline.compile``: torch.compile where asked and possible, eager otherwise, one log line
when it cannot be had. One real (tiny) inductor compile; the rest with injected stand-ins for
the compiler lookup and the compile step."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from pipeline.compiled import (
    PAYS_AFTER_RENDERS,
    CompiledOrEager,
    deferred,
    expect_renders,
    maybe_compile,
    wanted,
)
from pipeline.settings import ProcessKind
from tests.helpers.settings import pipeline_settings
from watcher.config import as_worker, default_config_path, load_layers

CPU = torch.device("cpu")
ONE_JOB, WORKER = ProcessKind.ONE_JOB, ProcessKind.WORKER


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.2)).eval()


@pytest.mark.parametrize(("setting", "device", "process", "expected"), [
    ("on", "cpu", ONE_JOB, "first frame"), ("on", "cuda", ONE_JOB, "first frame"),
    ("on", "mps", WORKER, "never"), ("off", "cpu", WORKER, "never"),
    ("off", "cuda", WORKER, "never"), ("off", "cpu", ONE_JOB, "never"),
    # auto: on the CPU only; from the first frame in a process that keeps the networks for
    # many jobs, and in a one-job process only for a long enough render (measured to pay)
    ("auto", "cpu", WORKER, "first frame"), ("auto", "cpu", ONE_JOB, "long render"),
    ("auto", "cuda", WORKER, "never"), ("auto", "cuda", ONE_JOB, "never"),
    ("auto", "mps", WORKER, "never"),
])
def test_which_settings_compile_where(setting: str, device: str, process: ProcessKind,
                                      expected: str) -> None:
    dev = torch.device(device)
    found = ("first frame" if wanted(setting, dev, process)
             else "long render" if deferred(setting, dev, process) else "never")
    assert found == expected


@pytest.mark.parametrize(("setting", "device", "process"), [
    ("off", "cpu", WORKER), ("off", "cpu", ONE_JOB), ("auto", "cuda", ONE_JOB),
    ("auto", "mps", WORKER)])
def test_off_and_auto_off_the_cpu_leave_the_module_as_it_is(
        setting: str, device: str, process: ProcessKind, tmp_path: Path) -> None:
    module = _tiny()
    env: dict[str, str] = {}
    assert maybe_compile(module, setting, torch.device(device), tmp_path, process,
                         environ=env) is module
    assert env == {}


def test_auto_in_one_job_compiles_only_for_a_render_that_repays_it(tmp_path: Path) -> None:
    """``facedrop run``: eager (the compile never called) until a render of at least
    ``PAYS_AFTER_RENDERS`` frames is announced; a shorter one leaves it eager."""
    compiled_calls: list[int] = []
    made: list[nn.Module] = []

    def recording(m: nn.Module) -> Any:
        made.append(m)  # where torch.compile (and inductor's import) would happen

        def run(x: torch.Tensor) -> torch.Tensor:
            compiled_calls.append(x.shape[0])
            return m(x)
        return run

    module = _tiny()
    wrapped = maybe_compile(module, "auto", CPU, tmp_path, ONE_JOB,
                            which=lambda _: "/usr/bin/g++", environ={}, compile_fn=recording)
    assert isinstance(wrapped, CompiledOrEager) and not wrapped.armed
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        expect_renders(wrapped, PAYS_AFTER_RENDERS - 1)
        short = wrapped(x)
        assert made == [] and compiled_calls == [] and not wrapped.armed
        expect_renders(wrapped, PAYS_AFTER_RENDERS)
        long = wrapped(x)
        expect_renders(module, PAYS_AFTER_RENDERS)  # a plain module: nothing to tell
    assert wrapped.armed and made == [module] and compiled_calls == [1, 1]
    assert torch.allclose(short, long, rtol=0, atol=1e-6)  # a batch of 2 or single frames


def test_a_short_run_without_a_compiler_says_nothing(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    module = _tiny()
    with caplog.at_level(logging.DEBUG, logger="facedrop.compile"):
        out = maybe_compile(module, "auto", CPU, tmp_path, ONE_JOB, which=lambda _: None,
                            environ={})
    assert out is module and caplog.records == []


def test_the_daemon_and_fleet_worker_are_worker_processes(tmp_path: Path) -> None:
    """The shipped default is auto; a plain config (facedrop run, bench) is one job's process,
    ``as_worker`` (what ``facedrop daemon`` and ``facedrop worker`` load) a worker's."""
    config = load_layers([default_config_path()], home=tmp_path)
    assert config.pipeline.compile == "auto" and config.pipeline.process is ONE_JOB
    assert as_worker(config).pipeline.process is WORKER
    assert as_worker(config).pipeline == pipeline_settings(
        tmp_path, weights_dir=config.pipeline.weights_dir, cache_dir=config.pipeline.cache_dir,
        drivers_dir=config.pipeline.drivers_dir, process=WORKER)


def test_auto_in_a_worker_compiles_one_sample_at_a_time_and_logs_its_cost(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """One compiled graph serves every batch size (each new shape would be a new compile), the
    outputs are the eager module's, and the first call's cost is logged once."""
    module = _tiny()
    shapes: list[tuple[int, ...]] = []

    def recording(m: nn.Module) -> Any:
        def run(x: torch.Tensor) -> torch.Tensor:
            shapes.append(tuple(x.shape))
            return m(x)
        return run

    ticks = iter([10.0, 52.4])
    wrapped = maybe_compile(module, "auto", CPU, tmp_path, WORKER, which=lambda _: "/usr/bin/g++",
                            environ={}, compile_fn=recording)
    assert isinstance(wrapped, CompiledOrEager)
    wrapped._clock = lambda: next(ticks)
    x = torch.randn(3, 3, 8, 8)
    with caplog.at_level(logging.INFO, logger="facedrop.compile"), torch.no_grad():
        out, again = wrapped(x), wrapped(x[:2])
        expected = module(x)
    assert shapes == [(1, 3, 8, 8)] * 5
    assert torch.allclose(out, expected, rtol=0, atol=1e-6) and torch.equal(again, out[:2])
    messages = [r.getMessage() for r in caplog.records]
    assert messages[-1] == "Sequential compiled in 42 s" and len(messages) == 2


@pytest.mark.parametrize(("setting", "level"), [("on", logging.WARNING), ("auto", logging.INFO)])
def test_no_compiler_runs_eager_with_one_log_line(setting: str, level: int, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Asked for, a missing compiler is a warning; under the default auto, a note."""
    module = _tiny()
    with caplog.at_level(logging.INFO, logger="facedrop.compile"):
        out = maybe_compile(module, setting, CPU, tmp_path, WORKER, which=lambda _: None,
                            environ={})
    assert out is module
    assert [r.levelno for r in caplog.records] == [level]
    assert "no C++ compiler" in caplog.records[0].getMessage()


def test_a_failed_compile_falls_back_to_eager_once(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    calls = []

    def broken(*_: Any) -> Any:
        calls.append(1)
        raise RuntimeError("inductor: cannot find Python.h\nmore detail")

    module = _tiny()
    env: dict[str, str] = {}
    wrapped = maybe_compile(module, "on", CPU, tmp_path, ONE_JOB,
                            which=lambda _: "/usr/bin/g++", environ=env,
                            compile_fn=lambda m: broken)
    assert isinstance(wrapped, CompiledOrEager)
    assert env["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "inductor")
    x = torch.randn(1, 3, 8, 8)
    with caplog.at_level(logging.WARNING, logger="facedrop.compile"), torch.no_grad():
        first, second = wrapped(x), wrapped(x)
        expected = module(x)
    assert torch.equal(first, expected) and torch.equal(second, expected)
    assert len(calls) == 1  # not retried on every call
    assert len(caplog.records) == 1
    assert "cannot find Python.h" in caplog.records[0].getMessage()


# importing inductor touches torch.jit's deprecated script_method (torch's own code, not ours)
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_inductor_output_matches_eager_and_is_cached_on_disk(tmp_path: Path) -> None:
    module = _tiny()
    env = {"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    wrapped = maybe_compile(module, "on", CPU, tmp_path, ONE_JOB, environ=env)  # real compile
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad(), pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCHINDUCTOR_CACHE_DIR", env["TORCHINDUCTOR_CACHE_DIR"])
        out = wrapped(x)
        expected = module(x)
    assert isinstance(wrapped, CompiledOrEager) and wrapped._compiled is not None
    assert (out - expected).abs().max() <= 1e-5
    assert any((tmp_path / "inductor").rglob("*.py"))  # the compiled kernels, kept for later


@pytest.mark.parametrize(("text", "expected"), [("on", "on"), ('"off"', "off"), ("auto", "auto"),
                                                ("true", "on")])
def test_the_config_takes_compile_as_a_word_or_a_yaml_boolean(tmp_path: Path, text: str,
                                                              expected: str) -> None:
    from watcher.config import load_config

    path = tmp_path / "config.yaml"
    path.write_text(f"pipeline:\n  compile: {text}\n")
    assert load_config(path).pipeline.compile == expected


def test_the_config_refuses_another_compile_word(tmp_path: Path) -> None:
    from pipeline.errors import ConfigError
    from watcher.config import load_config

    path = tmp_path / "config.yaml"
    path.write_text("pipeline:\n  compile: always\n")
    with pytest.raises(ConfigError, match="compile"):
        load_config(path)


@pytest.mark.parametrize(("before", "kept"), [(None, False), ("torch's default", False),
                                              ("/srv/mine", True)])
def test_the_cache_goes_to_facedrops_folder_unless_the_user_chose_one(
        before: str | None, kept: bool, tmp_path: Path) -> None:
    """Torch writes its temp-folder default into the variable the first time anything asks for
    the cache; that value is taken as unset, a user's own folder is kept."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    env: dict[str, str] = {}
    if before is not None:
        env["TORCHINDUCTOR_CACHE_DIR"] = (os.path.abspath(default_cache_dir())
                                          if before == "torch's default" else before)
    maybe_compile(_tiny(), "on", CPU, tmp_path, ONE_JOB, which=lambda _: "/usr/bin/g++",
                  environ=env, compile_fn=lambda m: m)
    assert env["TORCHINDUCTOR_CACHE_DIR"] == (before if kept else str(tmp_path / "inductor"))


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_a_cache_folder_that_cannot_be_made_runs_eager_with_one_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A hostile cache path (a file where the folder should be: a full or read-only disk fails
    the same way) costs the compile, never the render."""
    (tmp_path / "cache").write_text("not a folder")
    module = _tiny()
    env: dict[str, str] = {}
    wrapped = maybe_compile(module, "on", CPU, tmp_path / "cache", ONE_JOB, environ=env)
    x = torch.randn(2, 3, 8, 8)
    with (torch.no_grad(), pytest.MonkeyPatch.context() as mp,
          caplog.at_level(logging.WARNING, logger="facedrop.compile")):
        mp.setenv("TORCHINDUCTOR_CACHE_DIR", env["TORCHINDUCTOR_CACHE_DIR"])
        first, second = wrapped(x), wrapped(x)
        expected = module(x)
    assert torch.equal(first, expected) and torch.equal(second, expected)
    assert len(caplog.records) == 1 and "Not a directory" in caplog.records[0].getMessage()
