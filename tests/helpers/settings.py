"""Pipeline settings for tests: the shipped defaults (default.yaml), with folders and overrides."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.settings import PipelineSettings
from watcher.config import default_config_path, load_layers


def pipeline_settings(root: Path, **overrides: Any) -> PipelineSettings:
    """The default pipeline settings with weights, cache and drivers under ``root``."""
    folders = {"weights_dir": root / "w", "cache_dir": root / "cache", "drivers_dir": root / "d"}
    config = load_layers([default_config_path()], home=root / "home")  # no user file, no env
    return replace(config.pipeline, **{**folders, **overrides})
