"""Reading JoyVASA's ``motion_generator_hubert_chinese.pt`` without unpickling it freely.

The official file (jdh-algo/JoyVASA on Hugging Face; loader ``src/utils/helper.py: load_model``
at commit 74290f61accfbabef19b195a54b8122141f0e336) is a ``torch.save`` dict
``{'args': argparse.Namespace, 'model': OrderedDict, ...}`` whose pickle also holds
``pathlib.PosixPath`` values inside the Namespace. It is read with torch's restricted
``weights_only`` unpickler, allowing exactly those two classes besides tensors and containers:
any other global (``os.system`` included) is refused before anything runs. Building a
Namespace or a PosixPath runs no code beyond setting attributes / joining strings.

The architecture comes from the file's ``args`` (as the official loader does), so a small
random checkpoint in the official format describes a small network.
"""

from __future__ import annotations

import argparse
import pathlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from pipeline.errors import WeightsError
from pipeline.models.joyvasa_dit import DitConfig

WHAT = "JoyVASA motion generator"
FETCH_FIX = "run 'facedrop weights fetch voice' (offline: 'facedrop weights import DIR')"
ALLOWED_GLOBALS = (argparse.Namespace, pathlib.PosixPath)
AUDIO_MODELS = ("hubert_zh", "hubert_zh_ori", "hubert")  # HubertModel encoders (not wav2vec2)


@dataclass(frozen=True, slots=True)
class GeneratorArgs:
    """The checkpoint's ``args`` that inference reads (``NullableArgs`` in the official code)."""

    dit: DitConfig
    fps: float
    pad_mode: str
    audio_model: str


@dataclass(frozen=True, slots=True)
class GeneratorCheckpoint:
    args: GeneratorArgs
    model: dict[str, torch.Tensor]


def read_generator(path: Path) -> GeneratorCheckpoint:
    """Read the official generator file; ``WeightsError`` for a missing, foreign or unsafe one."""
    if not path.is_file():
        raise WeightsError(f"the {WHAT} weights are missing", file=path, fix=FETCH_FIX)
    try:
        with torch.serialization.safe_globals(list(ALLOWED_GLOBALS)):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a refused global, a corrupt archive: torch raises many types
        raise WeightsError(
            f"the {WHAT} file cannot be read safely ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})",
            file=path, fix=f"delete it and {FETCH_FIX}") from exc
    if not isinstance(data, Mapping) or "model" not in data or "args" not in data:
        raise WeightsError(f"the {WHAT} file is not the official {{'args', 'model'}} checkpoint",
                           file=path, fix=FETCH_FIX)
    model = data["model"]
    if not isinstance(model, Mapping) or not all(isinstance(v, torch.Tensor)
                                                 for v in model.values()):
        raise WeightsError(f"the {WHAT} file's 'model' is not a state dict", file=path,
                           fix=FETCH_FIX)
    return GeneratorCheckpoint(parse_args(data["args"], path), dict(model))


def parse_args(args: object, path: Path) -> GeneratorArgs:
    """The official ``args`` Namespace -> ``GeneratorArgs``, checked."""
    if not isinstance(args, argparse.Namespace):
        raise WeightsError(f"the {WHAT} file's 'args' is a {type(args).__name__}, not a "
                           "Namespace", file=path, fix=FETCH_FIX)
    fields = vars(args)

    def need_int(name: str) -> int:
        value = fields.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise WeightsError(f"the {WHAT} file's args.{name} is {value!r}, not a positive "
                               "integer", file=path, fix=FETCH_FIX)
        return value

    dit = DitConfig(motion_dim=need_int("motion_feat_dim"), n_motions=need_int("n_motions"),
                    n_prev=need_int("n_prev_motions"), feature_dim=need_int("feature_dim"),
                    n_diff_steps=need_int("n_diff_steps"))
    if dit.feature_dim % 8 or dit.n_prev > dit.n_motions:
        raise WeightsError(f"the {WHAT} file's args describe no valid network "
                           f"(feature_dim {dit.feature_dim}, n_prev_motions {dit.n_prev})",
                           file=path, fix=FETCH_FIX)
    fps = fields.get("fps", 25)
    if not isinstance(fps, int | float) or not 0 < fps <= 240:
        raise WeightsError(f"the {WHAT} file's args.fps is {fps!r}", file=path, fix=FETCH_FIX)
    pad_mode = fields.get("pad_mode", "zero")
    audio_model = fields.get("audio_model", "hubert_zh")
    if pad_mode not in ("zero", "replicate") or audio_model not in AUDIO_MODELS:
        raise WeightsError(f"the {WHAT} file asks for pad_mode {pad_mode!r} and audio_model "
                           f"{audio_model!r}; facedrop runs the HuBERT models with zero or "
                           "replicate padding", file=path, fix=FETCH_FIX)
    return GeneratorArgs(dit, float(fps), str(pad_mode), str(audio_model))
