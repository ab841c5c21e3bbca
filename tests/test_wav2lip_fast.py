"""Wav2Lip's fast pass: BatchNorm folded, the encoder once per distinct face, the decoder only on
the rows the blend uses. Each saving is held to the plain per-frame pass (random weights in the
official layout, the real photo's crops and masks)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pipeline.face.geometry import liveportrait_crop, warp
from pipeline.face.landmarks import FaceLandmarker
from pipeline.lipsync.engine import sync_frames
from pipeline.lipsync.wav2lip import blend
from pipeline.lipsync.wav2lip.stage import LipSyncer, face_input
from pipeline.lipsync.wav2lip.wav2lip_engine import Wav2LipEngine
from pipeline.lipsync.wav2lip.wav2lip_fast import FastWav2Lip, SkipCache, first_used_row
from pipeline.models.fold import fold_sequential_pairs
from pipeline.models.wav2lip import Wav2Lip
from tests.helpers.tolerance import assert_close
from tests.helpers.w2l_checkpoints import random_wav2lip_state_dict

CPU = torch.device("cpu")
F32 = torch.float32


def _net(seed: int = 0) -> Wav2Lip:
    net = Wav2Lip()
    net.load_state_dict(random_wav2lip_state_dict(seed))
    return net.eval()


@pytest.fixture(scope="module")
def scene(astronaut_path: Path, landmark_weights_dir: Path) -> dict:
    """Three 512 crops of the real photo (slightly shifted) and their prepared boxes/masks."""
    photo = cv2.cvtColor(cv2.imread(str(astronaut_path)), cv2.COLOR_BGR2RGB)
    landmarker = FaceLandmarker(landmark_weights_dir)
    lmk = landmarker.landmarks(photo, landmarker.detect(photo))
    to_crop = liveportrait_crop(lmk)
    crops = [warp(photo, to_crop, 512)]
    crops += [np.roll(crops[0], (k, 2 * k), axis=(0, 1)) for k in (1, 2)]
    syncer = LipSyncer(_net(), CPU, F32, 4, landmarker=landmarker)
    bases = syncer.prepare_sequence(crops, to_crop.apply(lmk).astype(np.float32))
    return {"crops": crops, "bases": bases, "landmarker": landmarker}


@pytest.mark.parametrize("first_row", [1, 3, 47, 95])
def test_decoder_band_equals_the_full_pass_on_its_rows(first_row: int) -> None:
    net = _net()
    g = torch.Generator().manual_seed(1)
    audio, face = torch.randn(2, 1, 80, 16, generator=g), torch.rand(2, 6, 96, 96, generator=g)
    with torch.no_grad():
        full = net(audio, face)
        band = net.decode(net.audio_encoder(audio), net.encode_face(face), first_row)
    assert float(full[:, :, first_row:].std()) > 0.01  # alive, not saturated
    assert_close(band[:, :, first_row:].numpy(), full[:, :, first_row:].numpy(), atol=1e-5,
                 what="decoded rows")
    assert not band[:, :, :first_row].any()  # rows above the band are not computed


def test_folded_batchnorm_matches_within_parity_tolerance() -> None:
    net, folded = _net(), _net()
    assert fold_sequential_pairs(folded) == sum(
        isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    g = torch.Generator().manual_seed(2)
    audio, face = torch.randn(2, 1, 80, 16, generator=g), torch.rand(2, 6, 96, 96, generator=g)
    with torch.no_grad():
        assert_close(folded(audio, face).numpy(), net(audio, face).numpy(), atol=1e-4,
                     what="folded output")


def test_first_used_row_covers_every_row_the_bicubic_patch_reads(scene: dict) -> None:
    rng = np.random.default_rng(3)
    for base in scene["bases"]:
        row = first_used_row(base.mask)
        assert 20 < row < 60, "the mask starts near the nostrils, well inside the face"
        generated = rng.uniform(0, 255, (96, 96, 3)).astype(np.float32)
        cut = generated.copy()
        cut[:row] = 0.0
        used = base.mask > 0
        whole = blend.resize_generated(generated, base.box)
        assert np.array_equal(blend.resize_generated(cut, base.box)[used], whole[used])
        # one row less margin would change used pixels: the bound is tight, not generous
        cut[row + 2] = 0.0  # CUBIC_MARGIN = 2: the row below the spare is read
        assert not np.array_equal(blend.resize_generated(cut, base.box)[used], whole[used])


def test_fast_pass_matches_the_plain_pass_and_encodes_each_face_once(scene: dict) -> None:
    crops, bases = scene["crops"], scene["bases"]
    order = [0, 1, 2, 1, 0, 0, 2, 1]  # three distinct faces over eight frames
    faces = np.stack([face_input(crops[k], bases[k].box) for k in order])
    mels = np.random.default_rng(4).normal(size=(len(order), 80, 16)).astype(np.float32)
    net = _net()
    plain = LipSyncer(net, CPU, F32, 4, landmarker=scene["landmarker"]).generate(faces, mels)
    folded = _net()
    fold_sequential_pairs(folded)
    fast = FastWav2Lip(folded, CPU, F32)
    first = min(first_used_row(bases[k].mask) for k in order)
    out = np.concatenate([fast.generate(faces[:4], mels[:4], first),
                          fast.generate(faces[4:], mels[4:], first)])
    assert_close(out[:, first:] / 255.0, plain[:, first:] / 255.0, atol=1e-4, what="rows used")
    assert (fast.cache.misses, fast.cache.hits) == (3, 3)  # per batch: 3 distinct, then 3 known
    # on the CPU the decoder runs channels-last: weights and the kept skips (within the 1e-4 above)
    assert folded.output_block[0].conv_block[0].weight.is_contiguous(
        memory_format=torch.channels_last)
    skips = fast.cache.get(SkipCache.key(faces[0]))
    assert skips is not None and skips[0].is_contiguous(memory_format=torch.channels_last)


def test_engine_frames_match_the_plain_engine(scene: dict) -> None:
    crops, bases = scene["crops"], scene["bases"]
    order = [0, 1, 2, 2, 1]
    frames, prepared = [crops[k] for k in order], [bases[k] for k in order]
    mels = np.random.default_rng(5).normal(size=(len(order), 80, 16)).astype(np.float32)
    plain_syncer = LipSyncer(_net(), CPU, F32, 4, landmarker=scene["landmarker"])
    folded = _net()
    fold_sequential_pairs(folded)
    fast_engine = Wav2LipEngine(plain_syncer, "wav2lip", "v", FastWav2Lip(folded, CPU, F32))
    plain = sync_frames(Wav2LipEngine(plain_syncer, "wav2lip", "v"), frames, prepared, mels)
    fast = sync_frames(fast_engine, frames, prepared, mels)
    for a, b, crop in zip(plain, fast, frames, strict=True):
        assert not np.array_equal(a, crop)  # the mouth was replaced
        diff = np.abs(a.astype(int) - b.astype(int))
        assert int(diff.max()) <= 1 and float((diff > 0).mean()) < 1e-3  # rounding ties only


def test_compare_times_both_paths_on_the_same_frames(tmp_path: Path,
                                                     landmark_weights_dir: Path) -> None:
    """``bench --compare``'s Wav2Lip rows: both paths on the same frames, their outputs one
    rounding level apart at most, times positive."""
    from pipeline.chain.compare import compare_lipsync
    from tests.helpers.settings import pipeline_settings
    from tests.helpers.w2l_checkpoints import write_wav2lip_checkpoint

    settings = pipeline_settings(tmp_path, device="cpu", dtype="fp32")
    write_wav2lip_checkpoint(settings.weights_dir / "wav2lip" / "wav2lip.pth")
    (settings.weights_dir / "landmarks").symlink_to(landmark_weights_dir / "landmarks")
    rows = compare_lipsync(settings, frames=4, distinct=2)
    assert [r.stage.split(" ")[0] for r in rows] == ["Wav2Lip", "lip-sync"]
    for row in rows:
        assert row.old > 0 and row.new > 0 and row.ratio == row.old / row.new
        assert row.max_diff <= 1
