"""The lip-sync engines by name: the one list of names facedrop accepts.

``pipeline.lipsync_model`` in the config and ``lipsync: <name>`` in ``job.yaml`` are validated
against ``ENGINE_NAMES``; the chain builds an engine with ``load_engine``; the first-run check
asks ``engine_entry(name)`` which weight files it needs. Nothing heavy is imported here: each
loader imports its engine's module when it is called.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.errors import ConfigError
from pipeline.settings import WAV2LIP_MODELS

if TYPE_CHECKING:  # only types: importing the engines here would load torch on config parsing
    from pipeline.lipsync.engine import EngineContext, LipSyncEngine


def _wav2lip(ctx: EngineContext, name: str) -> LipSyncEngine[Any]:
    from pipeline.lipsync.wav2lip.wav2lip_engine import load_wav2lip_engine

    return load_wav2lip_engine(ctx, name)


def _musetalk(ctx: EngineContext, name: str) -> LipSyncEngine[Any]:
    from pipeline.lipsync.musetalk.musetalk_engine import load_musetalk_engine

    return load_musetalk_engine(ctx, name)


@dataclass(frozen=True, slots=True)
class EngineEntry:
    """One engine: its name, the weight files it loads, whether fp16 was checked against fp32.

    ``weight_names`` are manifest entry names, ``weight_groups`` whole manifest groups.
    ``fp16_checked``: under ``dtype: auto`` the engine runs in fp16 on MPS/CUDA only if True.
    """

    name: str
    summary: str
    weight_names: tuple[str, ...]
    weight_groups: tuple[str, ...]
    fp16_checked: bool
    load: Callable[[EngineContext, str], LipSyncEngine[Any]]


# The Wav2Lip checkpoints (pipeline.settings.WAV2LIP_MODELS): each is an engine of its own
# name, loaded from ``wav2lip/<name>.pth`` (the manifest names the file like the engine).
_W2L_SUMMARY = {"wav2lip": "Wav2Lip: closes the mouth better (non-commercial weights)",
                "wav2lip_gan": "Wav2Lip GAN: sharper (non-commercial weights)"}
_ENTRIES: tuple[EngineEntry, ...] = (
    # fp16 checked: Wav2Lip's mouth patch is 75 dB PSNR from fp32 (tests/test_half_precision.py)
    *(EngineEntry(n, _W2L_SUMMARY[n], (n,), (), True, _wav2lip) for n in WAV2LIP_MODELS),
    EngineEntry("musetalk", "MuseTalk 1.5: 256 px mouth, MIT code, OpenRAIL-M weights", (),
                ("musetalk",), True, _musetalk),
)
ENGINES: dict[str, EngineEntry] = {e.name: e for e in _ENTRIES}
ENGINE_NAMES: tuple[str, ...] = tuple(ENGINES)  # == pipeline.settings.LIPSYNC_MODELS (tested)


def engine_entry(name: str) -> EngineEntry:
    """The registry entry for ``name``; ``ConfigError`` naming the valid engines otherwise."""
    try:
        return ENGINES[name]
    except KeyError:
        raise ConfigError(
            f"unknown lip-sync engine {name!r}",
            fix=f"set pipeline.lipsync_model (or lipsync: in job.yaml) to one of: "
                f"{', '.join(ENGINE_NAMES)}",
        ) from None


def load_engine(ctx: EngineContext, name: str) -> LipSyncEngine[Any]:
    """Build the engine ``name`` from its weight files under ``ctx.weights_dir``."""
    return engine_entry(name).load(ctx, name)
