"""``pipeline.compile``: torch.compile where asked and possible, eager otherwise, one log line
when it cannot be had. One real (tiny) inductor compile; the rest with injected stand-ins for
the compiler lookup and the compile step."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from pipeline.compiled import CompiledOrEager, maybe_compile

CPU = torch.device("cpu")


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.2)).eval()


@pytest.mark.parametrize("setting", ["off", "auto"])
def test_off_and_auto_leave_the_module_as_it_is(setting: str, tmp_path: Path) -> None:
    module = _tiny()
    env: dict[str, str] = {}
    assert maybe_compile(module, setting, CPU, tmp_path, environ=env) is module
    assert env == {}


def test_no_compiler_runs_eager_with_one_log_line(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    module = _tiny()
    with caplog.at_level(logging.WARNING, logger="pipeline.compiled"):
        out = maybe_compile(module, "on", CPU, tmp_path, which=lambda _: None, environ={})
    assert out is module
    assert len(caplog.records) == 1 and "no C++ compiler" in caplog.records[0].getMessage()


def test_a_failed_compile_falls_back_to_eager_once(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    calls = []

    def broken(*_: Any) -> Any:
        calls.append(1)
        raise RuntimeError("inductor: cannot find Python.h\nmore detail")

    module = _tiny()
    env: dict[str, str] = {}
    wrapped = maybe_compile(module, "on", CPU, tmp_path, which=lambda _: "/usr/bin/g++",
                            environ=env, compile_fn=lambda m: broken)
    assert isinstance(wrapped, CompiledOrEager)
    assert env["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "inductor")
    x = torch.randn(1, 3, 8, 8)
    with caplog.at_level(logging.WARNING, logger="pipeline.compiled"), torch.no_grad():
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
    wrapped = maybe_compile(module, "on", CPU, tmp_path, environ=env)  # the real compile
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
