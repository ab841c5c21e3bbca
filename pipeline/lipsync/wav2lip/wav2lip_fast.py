"""Wav2Lip's network pass without repeated or unseen work (same output where it is used).

Two exact savings over ``LipSyncer.generate`` (which runs the whole network per output frame):

- **the face encoder once per distinct face.** Its input (the masked crop and its reference)
  depends only on the animated crop and its box, not on the audio. In a repeat-avatar job the
  same crops come round again and again, so the encoder's skip features are kept per face input
  (by a hash of its bytes) in a small LRU and reused for every audio window;
- **only the rows the blend uses.** The lower-face mask is 0 above the nostrils, so the upper
  rows of the 96x96 output never reach a frame. ``first_used_row`` finds, from the mask and the
  bicubic resize's 4-tap support, the first 96-px row that can; the decoder's 24-96 px layers
  then run on those rows plus their receptive-field margin (``Wav2Lip.decode``).

On the CPU the decoder runs in channels-last layout (its weights and inputs; the same sums in
another memory order, within 1e-6 of the contiguous pass): oneDNN's convolutions over the
decoder's small, wide maps are faster in it (measured on an AVX-512 EPYC, one thread, batch 8:
31 -> 29 ms per frame; larger batches were slower per frame, 33-37 ms).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from pipeline.lipsync.wav2lip.stage import FACE_SIZE
from pipeline.models.wav2lip import Wav2Lip

CUBIC_MARGIN = 2  # source rows above a used row that cv2's bicubic taps read (1), plus one spare
# Skip features of one face: 16x96x96 + 32x48x48 + ... + 512x1x1 floats, about 1.1 MiB in fp32.
DEFAULT_CACHE_MB = 160  # about 140 distinct faces: a few seconds of driving clip at 25 fps


def first_used_row(mask: np.ndarray) -> int:
    """The first row of the 96x96 output that the blend can use, for a box-sized ``mask``.

    The patch is the output resized bicubically to the box (``blend.resize_generated``); box
    row ``y`` reads output rows ``floor((y + 0.5) * 96 / h - 0.5) - 1`` and below. Only rows
    where the mask is above 0 reach the frame (the colour match's ring weight is 0 elsewhere
    too). A mask that is 0 everywhere needs no rows; 95 keeps the decoder's work minimal then.
    """
    rows = np.flatnonzero(mask.max(axis=1) > 0) if mask.size else np.empty(0, np.int64)
    if rows.size == 0:
        return FACE_SIZE - 1
    src = (int(rows[0]) + 0.5) * FACE_SIZE / mask.shape[0] - 0.5
    return min(max(math.floor(src) - CUBIC_MARGIN, 0), FACE_SIZE - 1)


class SkipCache:
    """The face encoder's outputs per face input, least recently used dropped past a size."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self._entries: OrderedDict[str, list[torch.Tensor]] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(face: np.ndarray) -> str:
        digest = hashlib.blake2b(np.ascontiguousarray(face).tobytes(), digest_size=16)
        digest.update(np.asarray(face.shape, np.int64).tobytes())
        return digest.hexdigest()

    def get(self, key: str) -> list[torch.Tensor] | None:
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return found

    def put(self, key: str, skips: list[torch.Tensor]) -> None:
        size = sum(t.numel() * t.element_size() for t in skips)
        if size > self.limit_bytes or key in self._entries:
            return
        self._entries[key] = skips
        self._bytes += size
        while self._bytes > self.limit_bytes:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= sum(t.numel() * t.element_size() for t in dropped)


class FastWav2Lip:
    """``generate`` like ``LipSyncer.generate``, with per-face encoder reuse and a row band."""

    def __init__(self, net: Wav2Lip, device: torch.device, dtype: torch.dtype,
                 cache_mb: int = DEFAULT_CACHE_MB) -> None:
        self.net = net
        self.device = device
        self.dtype = dtype
        self.cache = SkipCache(cache_mb * 2**20)
        # oneDNN only: CUDA and MPS keep their own preferred layout
        self.layout = torch.channels_last if device.type == "cpu" else torch.contiguous_format
        _set_layout(net.face_decoder_blocks, self.layout)
        _set_layout(net.output_block, self.layout)

    def _skips(self, faces: np.ndarray) -> list[torch.Tensor]:
        """The batch's encoder outputs: cached faces reused, the others encoded together."""
        keys = [SkipCache.key(f) for f in faces]
        found = {k: self.cache.get(k) for k in dict.fromkeys(keys)}  # once per distinct face
        ready = {k: v for k, v in found.items() if v is not None}
        todo = [k for k in found if k not in ready]
        if todo:
            batch = np.ascontiguousarray(faces[[keys.index(k) for k in todo]], dtype=np.float32)
            encoded = self.net.encode_face(torch.from_numpy(batch).to(self.device, self.dtype))
            for j, k in enumerate(todo):
                ready[k] = [t[j:j + 1].clone(memory_format=self.layout) for t in encoded]
                self.cache.put(k, ready[k])
        chosen = [ready[k] for k in keys]
        return [torch.cat(level, dim=0) for level in zip(*chosen, strict=True)]

    @torch.no_grad()
    def generate(self, faces: np.ndarray, mels: np.ndarray, first_row: int = 0) -> np.ndarray:
        """faces (B,6,96,96) and mels (B,80,16) float32 -> (B,96,96,3) float32 RGB in [0, 255];
        rows above ``first_row`` are 0 (not computed)."""
        mel = torch.from_numpy(np.ascontiguousarray(mels, dtype=np.float32))[:, None]
        embedding = self.net.audio_encoder(mel.to(self.device, self.dtype))
        embedding = embedding.contiguous(memory_format=self.layout)
        out = self.net.decode(embedding, self._skips(faces), first_row)
        bgr = out.float().cpu().numpy().transpose(0, 2, 3, 1)  # (B,96,96,3) BGR in [0,1]
        return np.ascontiguousarray(bgr[..., ::-1]) * np.float32(255.0)


def _set_layout(module: nn.Module, layout: torch.memory_format) -> None:
    """Every 4-D weight under ``module`` in ``layout`` (what ``Module.to(memory_format=)`` does)."""
    with torch.no_grad():
        for param in module.parameters():
            if param.dim() == 4:
                param.data = param.data.contiguous(memory_format=layout)
