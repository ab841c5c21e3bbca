"""Random LivePortrait checkpoint files in exactly the official formats, for tests.

``write_liveportrait_checkpoints(weights_dir)`` writes the five official files under
``weights_dir/liveportrait/...`` with the official quirks: the ``detector.`` prefix of the motion
extractor, spectral-norm ``weight_orig``/``weight_u``/``weight_v`` in the generator, and the
stitching file's three ``module.``-prefixed sub-dicts. ``official_state_dicts`` gives the same
layouts as in-memory dicts (the parity tests fill them with ``tests/deterministic_weights.py``).
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import torch

from pipeline import lp_weights
from pipeline.models.liveportrait.convert import DDP_PREFIX, MOTION_PREFIX, STITCHING_SUBDICTS
from pipeline.models.liveportrait.spade import SPADEDecoder, SPADEResnetBlock

StateDict = dict[str, torch.Tensor]


def spectral_norm_convs(generator: SPADEDecoder) -> list[str]:
    """Names of the generator's convs that the official model wraps in spectral norm."""
    names = []
    for name, module in generator.named_modules():
        if isinstance(module, SPADEResnetBlock):
            convs = ("conv_0", "conv_1") + (("conv_s",) if module.learned_shortcut else ())
            names += [f"{name}.{conv}" for conv in convs]
    return names


def official_spade(sd: Mapping[str, torch.Tensor], spectral: list[str]) -> StateDict:
    """Our generator's dict -> the official layout: ``X.weight`` -> ``X.weight_orig/_u/_v``.

    u and v are the leading singular vectors of the weight (a few power iterations), so the
    stored sigma is the weight's spectral norm as a converged training run leaves it.
    """
    out: StateDict = {}
    spectral_set = set(spectral)
    for key, value in sd.items():
        base, _, name = key.rpartition(".")
        if base in spectral_set and name == "weight":
            u, v = _power_iteration(value.reshape(value.shape[0], -1))
            out[f"{base}.weight_orig"] = value
            out[f"{base}.weight_u"] = u
            out[f"{base}.weight_v"] = v
        else:
            out[key] = value
    return out


def _power_iteration(w: torch.Tensor, steps: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    v = torch.ones(w.shape[1], dtype=w.dtype) / math.sqrt(w.shape[1])
    u = w @ v
    for _ in range(steps):
        u = w @ v
        u = u / u.norm()
        v = w.T @ u
        v = v / v.norm()
    return u, v


def official_state_dicts(nets: lp_weights.LivePortraitNets) -> dict[str, object]:
    """File path (relative to weights_dir) -> that file's content, in the official layout."""
    stitching = {
        official: {DDP_PREFIX + k: v for k, v in getattr(nets, attr).state_dict().items()}
        for official, attr in zip(
            STITCHING_SUBDICTS, ("stitching", "retarget_lip", "retarget_eye"), strict=True
        )
    }
    return {
        lp_weights.APPEARANCE_FILE: dict(nets.appearance.state_dict()),
        lp_weights.MOTION_FILE: {MOTION_PREFIX + k: v for k, v in nets.motion.state_dict().items()},
        lp_weights.WARPING_FILE: dict(nets.warping.state_dict()),
        lp_weights.SPADE_FILE: official_spade(
            nets.generator.state_dict(), spectral_norm_convs(nets.generator)
        ),
        lp_weights.STITCHING_FILE: stitching,
    }


def empty_nets() -> lp_weights.LivePortraitNets:
    """Networks with uninitialised CPU tensors (cheap), for tests that fill every weight."""
    with torch.device("meta"):
        nets = lp_weights.build_liveportrait()
    for module in nets.modules().values():
        module.to_empty(device="cpu")
    return nets


def _randomise(nets: lp_weights.LivePortraitNets, seed: int) -> None:
    """Uniform weights with variance gain^2/fan_in, BN stats near identity: outputs stay alive.

    Uniform in place is the cheapest generator for ~130 M values (this must stay fast).
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for attr, module in nets.modules().items():
            gain = math.sqrt(2) if attr == "warping" else 1.0
            for name, t in module.state_dict().items():
                leaf = name.rsplit(".", 1)[-1]
                if not t.dtype.is_floating_point:
                    t.zero_()
                elif leaf == "running_var":
                    t.uniform_(0.5, 1.5, generator=g)
                elif t.ndim >= 2 and leaf == "weight":
                    bound = gain * math.sqrt(3.0 / t[0].numel())
                    t.uniform_(-bound, bound, generator=g)
                elif leaf == "weight":
                    t.uniform_(0.85, 1.15, generator=g)
                else:
                    t.uniform_(-0.15, 0.15, generator=g)


# (resolved dir, seed) -> {path: (size, mtime_ns)} of files this process wrote and can copy.
_WRITTEN: dict[tuple[str, int], dict[Path, tuple[int, int]]] = {}


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _intact(files: dict[Path, tuple[int, int]]) -> bool:
    return all(_signature(p) == sig for p, sig in files.items())


def write_liveportrait_checkpoints(weights_dir: Path, seed: int = 0) -> None:
    """Write random official-format LivePortrait files under ``weights_dir`` (about 520 MB).

    Within one process, a second call for the same directory and seed does nothing if the files
    are unchanged; a call for another directory copies the files written earlier (if unchanged)
    instead of regenerating them.
    """
    root = Path(weights_dir).resolve()
    key = (str(root), seed)
    if key in _WRITTEN and _intact(_WRITTEN[key]):
        return
    source = next(
        (k for k, files in _WRITTEN.items() if k[1] == seed and _intact(files)), None
    )
    written: dict[Path, tuple[int, int]] = {}
    if source is not None:
        for rel in lp_weights.LIVEPORTRAIT_FILES:
            dest = root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(source[0]) / rel, dest)
            written[dest] = _signature(dest)  # type: ignore[assignment]
    else:
        nets = empty_nets()  # no default init: every tensor is overwritten next
        _randomise(nets, seed)
        for rel, content in official_state_dicts(nets).items():
            dest = root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_suffix(".tmp")
            torch.save(content, tmp)
            os.replace(tmp, dest)
            written[dest] = _signature(dest)  # type: ignore[assignment]
    _WRITTEN[key] = written
