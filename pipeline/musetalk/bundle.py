"""``MuseTalk``: the loaded MuseTalk 1.5 networks and the four operations the lip-sync engine uses.

Data contract (all images RGB; the official scripts read frames with cv2 as BGR and convert to
RGB before the VAE and the face parser, and flip the VAE's RGB output back to BGR for cv2; here
nothing is BGR, so no flip is made anywhere):

- ``audio_features(samples_16k, fps, n_frames)``: float32 mono 16 kHz samples in -1..1 ->
  (n_frames, 50, 384) tensor, model dtype, on the device: 10 whisper states x 5 layers per frame.
- ``reference_latents(faces)``: (B, 256, 256, 3) uint8 RGB face crops (the official crop,
  resized to 256 with Lanczos) -> (B, 8, 32, 32) tensor, model dtype, on the device: the VAE
  latents of the face with its lower half blanked (channels 0-3) and of the whole face (4-7),
  times the VAE's scaling factor. This is what the avatar cache stores.
- ``unet(latents, windows)`` -> (B, 4, 32, 32) predicted latents (one pass at timestep 0, audio
  tokens plus the official positional encoding); ``decode(pred)`` -> (B, 256, 256, 3) uint8 RGB
  faces (``(x / 2 + 0.5).clamp(0, 1) * 255`` rounded, as the official ``decode_latents``);
  ``infer`` is the two together.
- ``parse(region, mode)``: (H, W, 3) uint8 RGB face region -> (H, W) uint8 0/255-ish parsing mask
  at the region's size (BiSeNet at 512, resized back bicubically as the official ``face_seg``);
  ``parsing.blend_mask`` turns it into the blend mask.

Returned tensors stay on the device in the model dtype (move them to the CPU to cache them).
The official face crop (``scripts/inference.py`` v1.5) is the face box with its bottom moved
``parsing.EXTRA_MARGIN`` down (``pipeline.lipsync.musetalk.musetalk_crop.face_box``), cropped from
the frame and resized to 256 x 256 with ``cv2.INTER_LANCZOS4``; the blend region is
``parsing.crop_box`` of the (extended) face box, cropped with ``parsing.crop_region``.

One documented difference: the official ``get_latents_for_unet`` takes a random draw from the
VAE's posterior (``latent_dist.sample()`` on the global RNG) for both latents; here the
posterior mean is used (``.mode()``, as the official training code's ``get_image_pred``), so a
cached avatar is a deterministic function of its crop. The draw's spread is the VAE's posterior
standard deviation, tiny next to the latents themselves for sd-vae-ft-mse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.errors import InputError
from pipeline.models.bisenet import BiSeNet
from pipeline.musetalk import audio, parsing
from pipeline.musetalk.configs import MuseTalkConfigs
from pipeline.musetalk.files import MuseTalkFiles
from pipeline.musetalk.load import (
    PREPROCESSOR_FIELDS,
    UNET_FIELDS,
    VAE_FIELDS,
    WHISPER_FIELDS,
    check_config,
    load_bisenet,
    load_unet,
    load_vae,
    load_whisper_encoder,
)
from pipeline.musetalk.offline import force_offline
from pipeline.musetalk.positional import add_positions

FACE_SIZE = 256
LATENT_CHANNELS = 4
TIMESTEP = 0


def feature_extractor(config: dict[str, Any]) -> Any:
    """transformers' ``WhisperFeatureExtractor`` from the shipped preprocessor config."""
    force_offline()
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor(**{k: v for k, v in config.items() if not k.startswith("_")})


def face_batch_to_tensor(faces: np.ndarray, half_mask: bool) -> torch.Tensor:
    """(B, 256, 256, 3) uint8 RGB -> (B, 3, 256, 256) float32 in -1..1, as the official
    ``preprocess_img``: ``/ 255.`` in float64 then float32, lower half zeroed (black, -1 after
    normalising) when ``half_mask``, then ``(x - 0.5) / 0.5``."""
    if faces.dtype != np.uint8 or faces.ndim != 4 or faces.shape[1:] != (FACE_SIZE, FACE_SIZE, 3):
        raise ValueError(f"expected (B, 256, 256, 3) uint8 RGB faces, got {faces.shape} "
                         f"{faces.dtype}")
    # Contiguous NCHW on purpose: the permuted view would carry channels-last strides into the
    # VAE encoder, where torch's CPU GroupNorm is less precise (latents 1.2e-4 from the official
    # code against 1e-6 contiguous), so channels-last is outside the 1e-4 parity tolerance.
    x = torch.from_numpy(faces.astype(np.float64) / 255.0).float().permute(0, 3, 1, 2)
    x = x.contiguous()
    if half_mask:
        mask = torch.zeros(FACE_SIZE, FACE_SIZE)
        mask[: FACE_SIZE // 2] = 1
        x = x * (mask > 0.5)
    return (x - 0.5) / 0.5


@dataclass
class MuseTalk:
    """The loaded networks; build with ``MuseTalk.load``. Inference only (no grad)."""

    # diffusers / transformers modules: typed Any, their call signatures are the libraries'
    unet_net: Any
    vae: Any
    whisper: Any
    parser: BiSeNet
    extractor: Any
    device: torch.device
    dtype: torch.dtype
    scaling_factor: float

    @classmethod
    def load(cls, weights_dir: Path, device: torch.device, dtype: torch.dtype,
             configs: MuseTalkConfigs | None = None) -> MuseTalk:
        """Load the four networks from the official files under ``weights_dir``.

        ``dtype`` applies to the UNet, VAE and whisper (as the official ``--use_float16``);
        the face parser stays float32 (the official never halves it). ``configs`` defaults to
        the shipped ones (tests pass reduced sizes). Raises ``WeightsError`` /
        ``ModelLoadError`` naming the file and the fix.
        """
        force_offline()
        cfg = MuseTalkConfigs.shipped() if configs is None else configs
        files = MuseTalkFiles.under(Path(weights_dir))
        check_config(files.unet_config, cfg.unet, UNET_FIELDS, "MuseTalk UNet")
        check_config(files.vae_config, cfg.vae, VAE_FIELDS, "sd-vae-ft-mse VAE")
        check_config(files.whisper_config, cfg.whisper, WHISPER_FIELDS, "whisper-tiny")
        check_config(files.whisper_preprocessor, cfg.preprocessor, PREPROCESSOR_FIELDS,
                     "whisper-tiny preprocessor")
        vae: Any = load_vae(files.vae, cfg.vae, device, dtype)
        return cls(
            unet_net=load_unet(files.unet, cfg.unet, device, dtype),
            vae=vae,
            whisper=load_whisper_encoder(files.whisper, cfg.whisper, device, dtype),
            parser=load_bisenet(files.parsing, device, torch.float32),
            extractor=feature_extractor(cfg.preprocessor),
            device=device,
            dtype=dtype,
            scaling_factor=float(vae.config.scaling_factor),
        )

    @torch.no_grad()
    def whisper_states(self, samples_16k: np.ndarray) -> torch.Tensor:
        """The joined encoder states of every 30 s segment, (1, 1500 * segments, 5, 384)."""
        samples = np.asarray(samples_16k, dtype=np.float32).reshape(-1)
        if samples.size == 0:
            raise InputError("the audio is empty, so there is nothing to lip-sync",
                             fix="use an audio file with speech in it")
        states = []
        for mel in audio.log_mels(self.extractor, samples):
            out = self.whisper(mel.to(device=self.device, dtype=self.dtype),
                               output_hidden_states=True)
            states.append(audio.stack_states(out.hidden_states))
        return torch.cat(states, dim=1)

    def audio_features(self, samples_16k: np.ndarray, fps: float, n_frames: int) -> torch.Tensor:
        """Per-frame whisper windows, (n_frames, 50, 384), model dtype, on the device."""
        samples = np.asarray(samples_16k, dtype=np.float32).reshape(-1)
        return audio.frame_windows(self.whisper_states(samples), samples.size, fps, n_frames)

    @torch.no_grad()
    def reference_latents(self, faces: np.ndarray) -> torch.Tensor:
        """(B, 256, 256, 3) uint8 RGB crops -> (B, 8, 32, 32) masked + reference latents."""
        masked = self._encode(face_batch_to_tensor(faces, half_mask=True))
        whole = self._encode(face_batch_to_tensor(faces, half_mask=False))
        return torch.cat([masked, whole], dim=1)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        dist = self.vae.encode(x.to(device=self.device, dtype=self.dtype)).latent_dist
        return self.scaling_factor * dist.mode()

    @torch.no_grad()
    def unet(self, latents: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
        """One UNet pass at timestep 0: (B, 8, h, w) latents + (B, T, 384) audio tokens ->
        (B, 4, h, w) predicted latents."""
        if latents.shape[0] != windows.shape[0]:
            raise ValueError(f"{latents.shape[0]} latents but {windows.shape[0]} audio windows")
        tokens = add_positions(windows.to(device=self.device, dtype=self.dtype))
        timesteps = torch.tensor([TIMESTEP], device=self.device)
        out = self.unet_net(latents.to(device=self.device, dtype=self.dtype), timesteps,
                            encoder_hidden_states=tokens)
        return out.sample

    @torch.no_grad()
    def decode(self, pred: torch.Tensor) -> np.ndarray:
        """(B, 4, h, w) predicted latents -> (B, 8h, 8w, 3) uint8 RGB faces."""
        image = self.vae.decode((1 / self.scaling_factor) * pred.to(self.dtype)).sample
        image = (image / 2 + 0.5).clamp(0, 1)
        image = image.detach().cpu().permute(0, 2, 3, 1).float().numpy()
        return np.asarray((image * 255).round().astype(np.uint8))

    def infer(self, latents: torch.Tensor, windows: torch.Tensor) -> np.ndarray:
        """``decode(unet(latents, windows))``: the lip-synced 256 x 256 RGB faces."""
        return self.decode(self.unet(latents, windows))

    @torch.no_grad()
    def parse_logits(self, region: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 RGB region -> BiSeNet's main-head logits, (1, 19, 512, 512) float32."""
        return self.parser(parsing.preprocess(region).to(self.device))[0]

    def parse(self, region: np.ndarray,
              mode: parsing.ParsingMode = parsing.ParsingMode.JAW) -> np.ndarray:
        """(H, W, 3) uint8 RGB region -> (H, W) uint8 parsing mask (official ``face_seg``)."""
        classes = self.parse_logits(region)[0].argmax(0).cpu().numpy()
        mask = parsing.class_mask(classes, mode)
        return parsing.resize_mask(mask, region.shape[1], region.shape[0])
