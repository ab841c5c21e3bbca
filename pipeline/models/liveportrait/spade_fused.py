"""G with its SPADE convolutions regrouped: the same maps, fewer and larger convolutions.

Built from a loaded ``SPADEDecoder`` (which it replaces: the weights are regrouped, not copied).
Exact rewrites, each differing from the plain decoder only by float rounding:

- **gamma and beta in one conv.** Each SPADE's ``mlp_gamma`` and ``mlp_beta`` read the same
  activation: one conv with both kernels stacked gives both (one pass over the activation).
- **every ``mlp_shared`` of a resolution in one conv.** All SPADEs read the same segmentation
  map (G's input), nearest-resized to their block's size: the twelve shared convs of the six
  64 px blocks read the same 64 px map, the three of ``up_0`` the same 128 px map, the three of
  ``up_1`` the same 256 px map. Their kernels are stacked into one conv per resolution.
- **no convolution over a nearest-upsampled map.** A 3x3 conv over a map upsampled s times
  (s = 2, 4) reads, at output pixel ``s*i + r`` and tap ``d``, source pixel ``i + (r + d) // s``:
  the phases ``r`` that map their taps alike share one smaller kernel (the taps' weights summed)
  applied to the 64 px source. For s = 4 that is 25 source taps per 16 output pixels instead of
  144, for s = 2 16 instead of 36.
- **fewer passes over the activations.** A block with a learned shortcut normalises its input
  once for norm_0 and norm_s; each SPADE's ``1 + gamma`` comes from the conv (1 added to the
  gamma bias) and ``normalized * (1 + gamma) + beta`` is one ``addcmul``; the LeakyReLUs and the
  residual sum run in place.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.models.liveportrait.spade import LEAKY_SLOPE, SPADE, SPADEDecoder, SPADEResnetBlock


def _conv(module: nn.Module) -> nn.Conv2d:
    if not isinstance(module, nn.Conv2d) or module.padding != (1, 1) or module.stride != (1, 1):
        raise TypeError(f"expected a 3x3 Conv2d with padding 1, got {module}")
    return module


def _stack(modules: list[nn.Module]) -> nn.Conv2d:
    """One conv computing ``modules`` (3x3 convs of one input) as consecutive channel groups."""
    convs = [_conv(m) for m in modules]
    first = convs[0]
    out = nn.Conv2d(first.in_channels, sum(c.out_channels for c in convs), 3, padding=1,
                    device=first.weight.device, dtype=first.weight.dtype)
    with torch.no_grad():
        out.weight.copy_(torch.cat([c.weight for c in convs]))
        biases = [c.bias if c.bias is not None else torch.zeros(c.out_channels) for c in convs]
        assert out.bias is not None
        out.bias.copy_(torch.cat(biases))
    return out


class UpsampledConv(nn.Module):
    """``conv(F.interpolate(x, scale_factor=s, mode="nearest"))`` for a 3x3, padding 1 conv,
    computed on ``x`` itself: one small conv per class of output phases, interleaved."""

    def __init__(self, conv: nn.Conv2d, scale: int) -> None:
        super().__init__()
        if conv.kernel_size != (3, 3) or conv.padding != (1, 1) or conv.stride != (1, 1):
            raise ValueError("only a 3x3 conv with padding 1 and stride 1 is rewritten")
        self.scale = scale
        # per axis: phase r's taps d = -1, 0, 1 read source offsets (r + d) // s
        maps = [tuple((r + d) // scale for d in (-1, 0, 1)) for r in range(scale)]
        self.classes = sorted(set(maps))
        self.phases = [[r for r in range(scale) if maps[r] == m] for m in self.classes]
        w = conv.weight.detach()
        kernels, self.pads = [], []
        for my in self.classes:
            for mx in self.classes:
                ky, kx = _fold_taps(my), _fold_taps(mx)  # (n_offsets, 3) tap -> offset sums
                kernels.append(torch.einsum("ya,xb,oiab->oiyx", ky.to(w), kx.to(w), w))
                # asymmetric zero padding: offset -1 needs a row/column before, +1 one after
                self.pads.append((-min(mx), max(mx), -min(my), max(my)))
        self.weights = nn.ParameterList(nn.Parameter(k.contiguous(), requires_grad=False)
                                        for k in kernels)
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(conv.out_channels)
        self.bias = nn.Parameter(bias.clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        s = self.scale
        out = x.new_empty(b, self.bias.shape[0], h, s, w, s)
        k = 0
        for ys in self.phases:
            for xs in self.phases:
                part = F.conv2d(F.pad(x, self.pads[k]), self.weights[k], self.bias)
                for ry in ys:
                    for rx in xs:
                        out[:, :, :, ry, :, rx] = part
                k += 1
        return out.view(b, -1, h * s, w * s)


def _fold_taps(offsets: tuple[int, ...]) -> torch.Tensor:
    """(n_distinct_offsets, 3): row j sums the taps that read the j-th smallest offset."""
    distinct = sorted(set(offsets))
    fold = torch.zeros(len(distinct), 3)
    for tap, off in enumerate(offsets):
        fold[distinct.index(off), tap] = 1.0
    return fold


class FusedSPADE(nn.Module):
    """A SPADE given its input already instance-normalised and its shared activation:
    normalized * (1 + gamma) + beta, with the 1 inside the gamma conv's bias (so the conv gives
    1 + gamma) and the product and sum in one ``addcmul`` pass."""

    def __init__(self, spade: SPADE) -> None:
        super().__init__()
        self.gamma_beta = _stack([spade.mlp_gamma, spade.mlp_beta])
        with torch.no_grad():
            bias = self.gamma_beta.bias
            assert bias is not None
            bias[: spade.mlp_gamma.out_channels] += 1.0

    def forward(self, normalized: torch.Tensor, actv: torch.Tensor) -> torch.Tensor:
        scale, beta = self.gamma_beta(actv).chunk(2, dim=1)
        return torch.addcmul(beta, normalized, scale)


class FusedResnetBlock(nn.Module):
    """``SPADEResnetBlock`` given its SPADEs' shared activations (norm_0, norm_1[, norm_s])."""

    def __init__(self, block: SPADEResnetBlock) -> None:
        super().__init__()
        self.learned_shortcut = block.learned_shortcut
        self.conv_0, self.conv_1 = block.conv_0, block.conv_1
        self.norm_0, self.norm_1 = FusedSPADE(block.norm_0), FusedSPADE(block.norm_1)
        if self.learned_shortcut:
            self.conv_s, self.norm_s = block.conv_s, FusedSPADE(block.norm_s)

    def forward(self, x: torch.Tensor, actvs: list[torch.Tensor]) -> torch.Tensor:
        # norm_0 and norm_s normalise the same x: once for both (the largest maps, 128-256 px)
        normalized = F.instance_norm(x, eps=1e-5)
        x_s = self.conv_s(self.norm_s(normalized, actvs[2])) if self.learned_shortcut else x
        # the SPADE outputs are fresh tensors: activate them in place (one pass less each)
        dx = self.conv_0(F.leaky_relu(self.norm_0(normalized, actvs[0]), LEAKY_SLOPE, True))
        del normalized
        h = F.instance_norm(dx, eps=1e-5)
        dx = self.conv_1(F.leaky_relu(self.norm_1(h, actvs[1]), LEAKY_SLOPE, True))
        return dx.add_(x_s)


def _spades(block: SPADEResnetBlock) -> list[SPADE]:
    return [block.norm_0, block.norm_1, *([block.norm_s] if block.learned_shortcut else [])]


class FusedSPADEDecoder(nn.Module):
    """G as ``SPADEDecoder``, with the convolutions regrouped (see the module docstring)."""

    def __init__(self, g: SPADEDecoder) -> None:
        super().__init__()
        middle = [getattr(g, f"G_middle_{i}") for i in range(6)]
        self.fc, self.conv_img = g.fc, g.conv_img
        self.middle = nn.ModuleList(FusedResnetBlock(b) for b in middle)
        self.up_0, self.up_1 = FusedResnetBlock(g.up_0), FusedResnetBlock(g.up_1)
        self.n_middle = [len(_spades(b)) for b in middle]
        self.n_up = [len(_spades(g.up_0)), len(_spades(g.up_1))]
        self.shared_64 = _stack([s.mlp_shared[0] for b in middle for s in _spades(b)])
        self.shared_128 = UpsampledConv(_stack([s.mlp_shared[0] for s in _spades(g.up_0)]), 2)
        self.shared_256 = UpsampledConv(_stack([s.mlp_shared[0] for s in _spades(g.up_1)]), 4)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        """W's ``out`` (B, 256, 64, 64) -> image (B, 3, 512, 512) in (0, 1)."""
        seg = feature
        x = self.fc(feature)
        actvs = list(F.relu(self.shared_64(seg)).chunk(sum(self.n_middle), dim=1))
        for block, n in zip(self.middle, self.n_middle, strict=True):
            x = block(x, actvs[:n])
            del actvs[:n]
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = self.up_0(x, list(F.relu(self.shared_128(seg)).chunk(self.n_up[0], dim=1)))
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = self.up_1(x, list(F.relu(self.shared_256(seg)).chunk(self.n_up[1], dim=1)))
        x = self.conv_img(F.leaky_relu(x, LEAKY_SLOPE))
        return torch.sigmoid(x)
