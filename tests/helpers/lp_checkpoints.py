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

from pipeline.liveportrait import loader
from pipeline.liveportrait.nets import LivePortraitNets
from pipeline.models.liveportrait.convert import DDP_PREFIX, MOTION_PREFIX, STITCHING_SUBDICTS
from pipeline.models.liveportrait.spade import SPADEDecoder, SPADEResnetBlock
from tests.helpers.deterministic_weights import fill_state_dict

StateDict = dict[str, torch.Tensor]


def spectral_norm_convs(generator: SPADEDecoder) -> list[str]:
    """Names of the generator's convs that the official model wraps in spectral norm."""
    names = []
    for name, module in generator.named_modules():
        if isinstance(module, SPADEResnetBlock):
            convs = ("conv_0", "conv_1") + (("conv_s",) if module.learned_shortcut else ())
            names += [f"{name}.{conv}" for conv in convs]
    return names


def official_spade(
    sd: Mapping[str, torch.Tensor], spectral: list[str], singular_vectors: bool = True
) -> StateDict:
    """Our generator's dict -> the official layout: ``X.weight`` -> ``X.weight_orig/_u/_v``.

    u and v are the leading singular vectors of the weight, so the stored sigma is the weight's
    spectral norm, as a converged training run leaves it. ``singular_vectors=False`` leaves
    them uninitialised (for a layout template whose values are about to be replaced).
    """
    out: StateDict = {}
    spectral_set = set(spectral)
    for key, value in sd.items():
        base, _, name = key.rpartition(".")
        if base in spectral_set and name == "weight":
            w = value.reshape(value.shape[0], -1)
            u, v = (
                leading_singular_vectors(w)
                if singular_vectors
                else (w.new_empty(w.shape[0]), w.new_empty(w.shape[1]))
            )
            out[f"{base}.weight_orig"] = value
            out[f"{base}.weight_u"] = u
            out[f"{base}.weight_v"] = v
        else:
            out[key] = value
    return out


def leading_singular_vectors(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The leading left / right singular vectors of a 2-D ``w``, signed as the fill rule does.

    The vectors of ``torch.linalg.svd`` (``tests/deterministic_weights.py``) to float rounding,
    from the top eigenvector of the small Gram matrix W W^T: ~100x faster for 512 x 4608.
    """
    gram = (w.float() @ w.float().T).double()  # fp32 product: sigma = u.Wv is second-order
    evals, evecs = torch.linalg.eigh(gram)  # insensitive to the rounding this leaves in u, v
    u = evecs[:, -1]
    v = w.double().T @ u / evals[-1].clamp_min(0).sqrt()
    sign = torch.sign(u.sum()) or 1.0
    return (u * sign).to(w.dtype), (v * sign).to(w.dtype)


def fill_official(template: Mapping[str, torch.Tensor], gain: float) -> StateDict:
    """``fill_state_dict(template, gain)``, computing the spectral-norm u / v faster.

    Every other tensor depends only on its own key, so filling without the u / v keys and adding
    them afterwards gives the same dict (u / v to float rounding, sigma to ~1e-7 relative).
    """
    plain = {k: v for k, v in template.items() if not k.endswith((".weight_u", ".weight_v"))}
    filled = fill_state_dict(plain, gain)
    for key in template:
        if key.endswith(".weight_orig"):
            base = key.removesuffix("orig")
            w = filled[key]
            filled[base + "u"], filled[base + "v"] = leading_singular_vectors(
                w.reshape(w.shape[0], -1)
            )
    return {k: filled[k] for k in template}


def official_state_dicts(
    nets: LivePortraitNets, singular_vectors: bool = True
) -> dict[str, object]:
    """File path (relative to weights_dir) -> that file's content, in the official layout."""
    stitching = {
        official: {DDP_PREFIX + k: v for k, v in getattr(nets, attr).state_dict().items()}
        for official, attr in zip(
            STITCHING_SUBDICTS, ("stitching", "retarget_lip", "retarget_eye"), strict=True
        )
    }
    return {
        loader.APPEARANCE_FILE: dict(nets.appearance.state_dict()),
        loader.MOTION_FILE: {MOTION_PREFIX + k: v for k, v in nets.motion.state_dict().items()},
        loader.WARPING_FILE: dict(nets.warping.state_dict()),
        loader.SPADE_FILE: official_spade(
            nets.generator.state_dict(), spectral_norm_convs(nets.generator), singular_vectors
        ),
        loader.STITCHING_FILE: stitching,
    }


def empty_nets() -> LivePortraitNets:
    """Networks with uninitialised CPU tensors (cheap), for tests that fill every weight."""
    with torch.device("meta"):
        nets = loader.build_liveportrait()
    for module in nets.modules().values():
        module.to_empty(device="cpu")
    return nets


def _randomise(nets: LivePortraitNets, seed: int) -> None:
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
        for rel in loader.LIVEPORTRAIT_FILES:
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
