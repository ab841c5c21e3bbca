"""The Wav2Lip generator G (Prajwal et al., "A Lip Sync Expert Is All You Need", ACM MM 2020).

G takes a mel window of speech ``S`` (B,1,80,16) and a face pair (B,6,96,96): the target face with
its lower half blanked, then a reference face, both BGR in [0, 1] as the model was trained. It
returns the lower-face-completed target (B,3,96,96) BGR in [0, 1] from a sigmoid.

Structure (an encoder-decoder with skip connections, as the official ``models/wav2lip.py``):
face encoder (7 blocks, each output kept as a skip), audio encoder (to a 512-d embedding), face
decoder (7 blocks, each output concatenated with the deepest unused skip), output block. Module
names and nesting follow the official file, so its ``state_dict`` keys
(``face_encoder_blocks.{i}.{j}.conv_block.{0,1}.*``, ``audio_encoder.{j}...``,
``face_decoder_blocks...``, ``output_block.{0,1}...``: 352 entries) load unchanged.

Only the 4-D inference path is implemented; the official 5-D (B,C,T,H,W) path is for training.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from pipeline.models.keymap import rename

IntPair = int | tuple[int, int]

# (cin, cout, n_residual) per stride-2 stage of the face encoder, blocks 1..5 (official table).
FACE_DOWN_STAGES: tuple[tuple[int, int, int], ...] = (
    (16, 32, 2),  # -> 32 @ 48x48
    (32, 64, 3),  # -> 64 @ 24x24
    (64, 128, 2),  # -> 128 @ 12x12
    (128, 256, 2),  # -> 256 @ 6x6
    (256, 512, 1),  # -> 512 @ 3x3
)
# (cin, cout, stride, n_residual) per stage of the audio encoder; input (B,1,80,16).
AUDIO_STAGES: tuple[tuple[int, int, IntPair, int], ...] = (
    (1, 32, 1, 2),  # -> 32 @ 80x16
    (32, 64, (3, 1), 2),  # -> 64 @ 27x16
    (64, 128, 3, 2),  # -> 128 @ 9x6
    (128, 256, (3, 2), 1),  # -> 256 @ 3x3
)
# (cin, cout, n_residual) per stride-2 transposed stage of the decoder, blocks 2..6; cin is the
# previous block's output plus the concatenated skip.
DECODER_UP_STAGES: tuple[tuple[int, int, int], ...] = (
    (1024, 512, 2),  # -> 512 @ 6x6, + skip 256 = 768
    (768, 384, 2),  # -> 384 @ 12x12, + skip 128 = 512
    (512, 256, 2),  # -> 256 @ 24x24, + skip 64 = 320
    (320, 128, 2),  # -> 128 @ 48x48, + skip 32 = 160
    (160, 64, 2),  # -> 64 @ 96x96, + skip 16 = 80
)


class ConvBlock(nn.Module):
    """Conv2d (with bias) -> BatchNorm2d [-> + input] -> ReLU: the official ``conv.Conv2d`` unit."""

    def __init__(
        self, cin: int, cout: int, kernel_size: int, stride: IntPair, padding: int,
        residual: bool = False,
    ) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.Conv2d(cin, cout, kernel_size, stride, padding), nn.BatchNorm2d(cout)
        )
        self.residual = residual
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:  # the residual is added after BatchNorm, before the ReLU
            out = out + x
        return self.act(out)


class TransposeBlock(nn.Module):
    """ConvTranspose2d -> BatchNorm2d -> ReLU: the official ``conv.Conv2dTranspose`` unit."""

    def __init__(
        self, cin: int, cout: int, kernel_size: int, stride: int, padding: int,
        output_padding: int = 0,
    ) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, kernel_size, stride, padding, output_padding),
            nn.BatchNorm2d(cout),
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv_block(x))


def _residuals(channels: int, n: int) -> list[ConvBlock]:
    return [ConvBlock(channels, channels, 3, 1, 1, residual=True) for _ in range(n)]


def _face_encoder() -> nn.ModuleList:
    blocks: list[nn.Module] = [nn.Sequential(ConvBlock(6, 16, 7, 1, 3))]  # -> 16 @ 96x96
    for cin, cout, n_res in FACE_DOWN_STAGES:
        blocks.append(nn.Sequential(ConvBlock(cin, cout, 3, 2, 1), *_residuals(cout, n_res)))
    # 3x3 valid conv then 1x1: 512 @ 3x3 -> 512 @ 1x1
    blocks.append(nn.Sequential(ConvBlock(512, 512, 3, 1, 0), ConvBlock(512, 512, 1, 1, 0)))
    return nn.ModuleList(blocks)


def _audio_encoder() -> nn.Sequential:
    layers: list[nn.Module] = []
    for cin, cout, stride, n_res in AUDIO_STAGES:
        layers += [ConvBlock(cin, cout, 3, stride, 1), *_residuals(cout, n_res)]
    # 256 @ 3x3 -> 512 @ 1x1 -> 512 @ 1x1: the audio embedding
    layers += [ConvBlock(256, 512, 3, 1, 0), ConvBlock(512, 512, 1, 1, 0)]
    return nn.Sequential(*layers)


def _face_decoder() -> nn.ModuleList:
    blocks: list[nn.Module] = [
        nn.Sequential(ConvBlock(512, 512, 1, 1, 0)),  # 512 @ 1x1, + skip 512 = 1024
        # 1x1 -> 3x3 (k3, s1, p0), + skip 512 = 1024
        nn.Sequential(TransposeBlock(1024, 512, 3, 1, 0), *_residuals(512, 1)),
    ]
    for cin, cout, n_res in DECODER_UP_STAGES:
        up = TransposeBlock(cin, cout, 3, 2, 1, output_padding=1)  # doubles H and W
        blocks.append(nn.Sequential(up, *_residuals(cout, n_res)))
    return nn.ModuleList(blocks)


class Wav2Lip(nn.Module):
    """The Wav2Lip generator; ``forward(audio, face)`` in the official argument order."""

    def __init__(self) -> None:
        super().__init__()
        self.face_encoder_blocks = _face_encoder()
        self.audio_encoder = _audio_encoder()
        self.face_decoder_blocks = _face_decoder()
        self.output_block = nn.Sequential(
            ConvBlock(80, 32, 3, 1, 1), nn.Conv2d(32, 3, 1, 1, 0), nn.Sigmoid()
        )

    def forward(self, audio: torch.Tensor, face: torch.Tensor) -> torch.Tensor:
        """audio (B,1,80,16) mel, face (B,6,96,96) BGR [0,1] -> (B,3,96,96) BGR [0,1]."""
        if audio.dim() != 4 or face.dim() != 4:
            raise ValueError(
                f"expected audio (B,1,80,16) and face (B,6,96,96), got {tuple(audio.shape)} "
                f"and {tuple(face.shape)}"
            )
        return self.decode(self.audio_encoder(audio), self.encode_face(face))

    def encode_face(self, face: torch.Tensor) -> list[torch.Tensor]:
        """The face encoder's outputs, shallowest first: 16@96, 32@48, 64@24, 128@12, 256@6,
        512@3, 512@1. They depend on the face pair only (not the audio), so a caller may keep
        them per distinct face and hand them to ``decode`` for every audio window."""
        skips = []
        h = face
        for block in self.face_encoder_blocks:
            h = block(h)
            skips.append(h)
        return skips

    def decode(self, audio_embedding: torch.Tensor, skips: list[torch.Tensor],
               first_row: int = 0) -> torch.Tensor:
        """The face decoder and output block: (B,512,1,1) and ``encode_face``'s skips ->
        (B,3,96,96) BGR [0,1].

        With ``first_row`` > 0 only output rows ``first_row``..95 are computed (the rows above
        are 0): each layer at 24, 48 and 96 px runs on the rows its receptive field needs and
        no more. The computed rows are the full pass's (same arithmetic on the same inputs: a
        3x3 conv's top row is dropped where its zero padding stood in for a real row, and the
        stride-2 transposed conv's first output row needs only its first input row), up to the
        rounding of differently shaped kernels.
        """
        if not 0 <= first_row < FACE_OUT:
            raise ValueError(f"first_row must be in 0..{FACE_OUT - 1}, got {first_row}")
        starts = _band_starts(first_row, self.face_decoder_blocks)
        x = audio_embedding
        skips = list(skips)
        start = 0
        for block, need in zip(self.face_decoder_blocks, starts, strict=True):
            x, start = _run_band(block, x, start, need)
            # decoder output concatenated with the deepest unused encoder feature (same W)
            x = torch.cat((x, skips.pop()[:, :, start:]), dim=1)  # ends at (B,80,96-start,96)
        head, *tail = self.output_block
        x, start = _run_band(nn.Sequential(head), x, start, max(start, first_row - 1))
        x, start = x[:, :, first_row - start:], first_row  # (no-op unless the band began at 0)
        for layer in tail:  # 1x1 conv, sigmoid: row-local
            x = layer(x)
        if start == 0:
            return x
        return torch.cat((x.new_zeros(x.shape[0], x.shape[1], start, x.shape[3]), x), dim=2)


FACE_OUT = 96  # the output's rows


def _band_starts(first_row: int, decoder: nn.ModuleList) -> list[int]:
    """The first row each decoder block's input must hold (at its input resolution) so that
    output rows ``first_row``.. come out exact (0: the whole input, as in the small blocks)."""
    need = max(first_row - 1, 0)  # the output block's 3x3 conv
    starts = [0] * len(decoder)
    for i in range(len(decoder) - 1, 1, -1):  # the stride-2 stages: 96, 48, 24, 12, 6 px out
        n_res = sum(isinstance(m, ConvBlock) for m in decoder[i].children())
        starts[i] = max(need - n_res, 0) // 2
        need = starts[i]
    return starts


def _run_band(block: nn.Module, x: torch.Tensor, start: int, need: int
              ) -> tuple[torch.Tensor, int]:
    """Run a decoder block on a row band of its input that begins at row ``start``.

    Where ``need`` is above ``start`` the band is first cut down to begin at ``need``. Returns
    the output band and the row it begins at (in the output's resolution).
    """
    if need > start:
        x, start = x[:, :, need - start:], need
    for layer in block.children():
        if isinstance(layer, TransposeBlock):  # k3 s2 p1 op1: output row 2a needs input row a
            x, start = layer(x), 2 * start
        elif isinstance(layer, ConvBlock):
            conv = layer.conv_block[0]
            k = conv.kernel_size[0] if isinstance(conv, nn.Conv2d) else 1
            out = layer.conv_block(x)
            if layer.residual:
                out = out + x
            out = layer.act(out)
            if start > 0 and k == 3:  # the top row saw zero padding for a real row: drop it
                out, start = out[:, :, 1:], start + 1
            x = out
        else:
            x = layer(x)
    return x, start


def convert_wav2lip_state_dict(ckpt: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """The network's state dict from an official Wav2Lip checkpoint (pure, idempotent).

    Accepts the checkpoint dict (``{'state_dict', 'optimizer', 'global_step', 'global_epoch'}``,
    optimizer state ignored) or a bare state dict, and strips a leading ``module.`` (a
    DataParallel wrapper) from each key where present. Raises ``KeyError`` if a checkpoint dict
    has no tensors at all (the loader turns that into a user-facing error), and
    ``KeyConversionError`` naming both keys when ``module.X`` and ``X`` are both present.
    """
    inner = ckpt.get("state_dict", ckpt)
    if not isinstance(inner, Mapping):
        raise KeyError("state_dict")
    tensors = {str(k): v for k, v in inner.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise KeyError("state_dict")
    return rename(tensors, lambda k: k.removeprefix("module."))
