"""The official LivePortrait hyperparameters (``src/config/models.yaml``), one frozen value each.

The networks take explicit constructor arguments; ``from_config`` builds them from these values.
Changing a number here changes the checkpoint layout, so these are the only defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class AppearanceConfig:
    """F: ``appearance_feature_extractor_params``."""

    image_channel: int = 3
    block_expansion: int = 64
    num_down_blocks: int = 2
    max_features: int = 512
    reshape_channel: int = 32
    reshape_depth: int = 16
    num_resblocks: int = 6


@dataclass(frozen=True, slots=True)
class MotionConfig:
    """M: ``motion_extractor_params`` (ConvNeXtV2-tiny backbone; 66 pose bins by default)."""

    num_kp: int = 21
    num_bins: int = 66
    in_chans: int = 3
    depths: tuple[int, ...] = (3, 3, 9, 3)
    dims: tuple[int, ...] = (96, 192, 384, 768)


@dataclass(frozen=True, slots=True)
class DenseMotionConfig:
    """W's ``dense_motion_params``."""

    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    reshape_depth: int = 16
    compress: int = 4


@dataclass(frozen=True, slots=True)
class WarpingConfig:
    """W: ``warping_module_params``."""

    num_kp: int = 21
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    reshape_channel: int = 32
    estimate_occlusion_map: bool = True
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)


@dataclass(frozen=True, slots=True)
class SpadeConfig:
    """G: ``spade_generator_params`` (out_channels is the class default, 64)."""

    upscale: int = 2
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    out_channels: int = 64


@dataclass(frozen=True, slots=True)
class MLPConfig:
    """One stitching / retargeting MLP: input, hidden widths, output."""

    input_size: int
    hidden_sizes: tuple[int, ...]
    output_size: int


@dataclass(frozen=True, slots=True)
class StitchingConfig:
    """S, R_lip, R_eyes: ``stitching_retargeting_module_params``."""

    stitching: MLPConfig = MLPConfig(126, (128, 128, 64), 65)  # (21*3)*2 -> 21*3 + (tx, ty)
    lip: MLPConfig = MLPConfig(65, (128, 128, 64), 63)  # 21*3 + 2 ratios -> 21*3
    eye: MLPConfig = MLPConfig(66, (256, 256, 128, 128, 64), 63)  # 21*3 + 3 ratios -> 21*3


@dataclass(frozen=True, slots=True)
class LivePortraitConfig:
    """All five networks' hyperparameters."""

    appearance: AppearanceConfig = field(default_factory=AppearanceConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    warping: WarpingConfig = field(default_factory=WarpingConfig)
    spade: SpadeConfig = field(default_factory=SpadeConfig)
    stitching: StitchingConfig = field(default_factory=StitchingConfig)
