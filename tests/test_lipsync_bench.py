"""The lip-sync benchmark measures every part on the real stage code."""

from __future__ import annotations

from pathlib import Path

import cv2
import torch

from pipeline.face.landmarks import FaceLandmarker
from pipeline.lipsync.wav2lip.bench import benchmark_lipsync
from pipeline.media.audio import load_audio
from pipeline.models.wav2lip import Wav2Lip
from tests.helpers.w2l_checkpoints import random_wav2lip_state_dict


def test_benchmark_reports_each_part(
    astronaut_path: Path, speech_path: Path, landmark_weights_dir: Path
) -> None:
    net = Wav2Lip()
    net.load_state_dict(random_wav2lip_state_dict(1))
    photo = cv2.cvtColor(cv2.imread(str(astronaut_path)), cv2.COLOR_BGR2RGB)
    result = benchmark_lipsync(
        net.eval(), FaceLandmarker(landmark_weights_dir), photo, load_audio(speech_path).samples,
        torch.device("cpu"), torch.float32, frames=4, distinct=2, batch_size=2,
    )
    assert (result.frames, result.distinct, result.batch_size) == (4, 2, 2)
    assert result.device == "cpu" and result.dtype == "float32"
    for part in (result.landmarks_ms, result.mel_ms, result.generator_ms, result.blend_ms):
        assert part > 0
    parts = result.generator_ms + result.blend_ms + result.mel_ms
    assert parts <= result.total_ms
    assert result.generator_ms > result.blend_ms  # a 36 M-parameter net vs. a resize and a mix
    assert result.peak_rss_mb > 100  # the model alone is 145 MB of fp32 weights
    assert result.peak_traced_mb > 0 and result.device_peak_mb == 0
