"""The loaded models a daemon keeps resident between jobs: loaded on first use, then reused.

Each model is loaded once per process (daemon or ``facedrop run``), on the device and dtype the
settings pick, and the seconds spent loading are recorded so a job's timing log can show them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import torch

from pipeline.device import pick_device, pick_dtype
from pipeline.settings import PipelineSettings

T = TypeVar("T")


class ModelBank:
    """Lazily loaded, cached models, and the seconds spent loading them."""

    def __init__(self, settings: PipelineSettings) -> None:
        self.settings = settings
        self.device = pick_device(settings.device)
        # one loader per key, so each key holds the one type its load() returns
        self._models: dict[str, Any] = {}
        self._load_seconds = 0.0

    def dtype(self, fp16_checked: bool) -> torch.dtype:
        """The dtype for a stage: fp16 only where that stage was checked against fp32."""
        return pick_dtype(self.device, self.settings.dtype, fp16_checked)

    def get(self, key: str, load: Callable[[], T]) -> T:
        """The model under ``key``, loading it with ``load()`` the first time."""
        if key not in self._models:
            start = time.perf_counter()
            self._models[key] = load()
            self._load_seconds += time.perf_counter() - start
        model: T = self._models[key]
        return model

    def take_load_seconds(self) -> float:
        """Seconds spent loading since the last call (0 for a job that found everything loaded)."""
        seconds, self._load_seconds = self._load_seconds, 0.0
        return seconds
