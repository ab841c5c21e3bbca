"""A pipeline named by ``module:Class``: a factory that can cross into a spawned process.

The worker child (``watcher.child``) is started with spawn, which pickles what it is given: a
closure cannot go, a named class can. ``PipelineRef(spec)(config)`` imports the class and builds
it as ``Class(config.pipeline)``; the import happens at the first call, so nothing loads early.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from pipeline.errors import ConfigError
from pipeline.spec import Pipeline
from watcher.config import Config

PIPELINE_ENV = "FACEDROP_PIPELINE"  # test hook: "module:Class" of the pipeline to run


@dataclass(frozen=True, slots=True)
class PipelineRef:
    """A picklable pipeline factory."""

    spec: str

    def __call__(self, config: Config) -> Pipeline:
        module, _, attr = self.spec.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as err:
            raise ConfigError(
                f"the pipeline '{self.spec}' cannot be loaded ({err})",
                fix=f"unset {PIPELINE_ENV} or reinstall facedrop",
            ) from err
        pipeline: Pipeline = cls(config.pipeline)
        return pipeline
