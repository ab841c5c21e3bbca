"""MuseTalk's pure parts: key conversions, the frame chunking, the positional table, the parsing
mask rules and crops, BiSeNet's layout. No model files, no diffusers forward passes."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from pipeline.models.bisenet import BiSeNet, convert_bisenet_state_dict
from pipeline.models.keymap import KeyConversionError
from pipeline.musetalk import audio, parsing
from pipeline.musetalk.configs import MuseTalkConfigs
from pipeline.musetalk.networks import (
    build_unet,
    build_vae,
    build_whisper_encoder,
    convert_vae_state_dict,
    convert_whisper_state_dict,
)
from pipeline.musetalk.offline import OFFLINE_ENV, force_offline
from pipeline.musetalk.positional import positional_table


def test_importing_the_package_loads_no_model_library() -> None:
    code = ("import sys, pipeline.musetalk.bundle, pipeline.musetalk.load; "
            "print(sorted(m for m in ('diffusers', 'transformers', 'huggingface_hub') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_force_offline_sets_every_switch_in_the_mapping_given() -> None:
    env: dict[str, str] = {"HF_HUB_OFFLINE": "0", "OTHER": "x"}
    force_offline(env)
    assert env == {**OFFLINE_ENV, "OTHER": "x"}


def test_shipped_configs_are_musetalk_v15() -> None:
    cfg = MuseTalkConfigs.shipped()
    assert cfg.unet["in_channels"] == 8 and cfg.unet["out_channels"] == 4
    assert cfg.unet["cross_attention_dim"] == cfg.whisper["d_model"] == 384
    assert cfg.vae["latent_channels"] == 4 and len(cfg.vae["block_out_channels"]) == 4
    assert cfg.preprocessor["feature_size"] == cfg.whisper["num_mel_bins"] == 80
    assert "scaling_factor" not in cfg.vae  # diffusers' default 0.18215, as the official code
    cfg.unet["in_channels"] = 99  # each call is a fresh copy
    assert MuseTalkConfigs.shipped().unet["in_channels"] == 8


def test_full_size_networks_have_the_published_shapes() -> None:
    cfg = MuseTalkConfigs.shipped()
    unet = build_unet(cfg.unet).state_dict()  # meta tensors: shapes only, no memory
    assert tuple(unet["conv_in.weight"].shape) == (320, 8, 3, 3)
    assert tuple(unet["conv_out.weight"].shape) == (4, 320, 3, 3)
    assert tuple(unet["down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"].shape) \
        == (320, 384)  # cross-attention over the 384-wide audio tokens
    assert len(unet) == 686 and sum(t.numel() for t in unet.values()) == 849_947_844
    vae = build_vae(cfg.vae).state_dict()
    assert tuple(vae["encoder.conv_in.weight"].shape) == (128, 3, 3, 3)
    assert tuple(vae["quant_conv.weight"].shape) == (8, 8, 1, 1)
    whisper = build_whisper_encoder(cfg.whisper).state_dict()
    assert tuple(whisper["conv1.weight"].shape) == (384, 80, 3)
    assert tuple(whisper["embed_positions.weight"].shape) == (1500, 384)
    assert sum(k.startswith("layers.") and k.endswith("fc1.weight") for k in whisper) == 4


def test_vae_legacy_attention_names_are_renamed_and_both_spellings_refused() -> None:
    t = torch.zeros(2)
    legacy = {"encoder.mid_block.attentions.0.query.weight": t,
              "decoder.mid_block.attentions.0.proj_attn.bias": t,
              "encoder.conv_in.weight": t, "step": 3}
    out = convert_vae_state_dict(legacy)
    assert set(out) == {"encoder.mid_block.attentions.0.to_q.weight",
                        "decoder.mid_block.attentions.0.to_out.0.bias", "encoder.conv_in.weight"}
    assert convert_vae_state_dict(out).keys() == out.keys()  # idempotent
    both = {**legacy, "encoder.mid_block.attentions.0.to_q.weight": t}
    with pytest.raises(KeyConversionError, match="to_q.weight"):
        convert_vae_state_dict(both)


def test_whisper_conversion_keeps_the_encoder_and_names_strays() -> None:
    t = torch.zeros(1)
    ckpt = {"model.encoder.conv1.weight": t, "model.decoder.embed_tokens.weight": t,
            "proj_out.weight": t, "model.encoder.layers.0.fc1.bias": t, "lm_head.bias": t}
    assert set(convert_whisper_state_dict(ckpt)) == {"conv1.weight", "layers.0.fc1.bias",
                                                     "lm_head.bias"}  # stray -> unexpected
    bare = {"encoder.conv1.weight": t, "decoder.layer_norm.weight": t}
    assert set(convert_whisper_state_dict(bare)) == {"conv1.weight"}
    with pytest.raises(KeyConversionError):
        convert_whisper_state_dict({"model.encoder.conv1.weight": t, "encoder.conv1.weight": t})


def test_bisenet_layout_is_the_official_one() -> None:
    sd = BiSeNet().state_dict()
    assert tuple(sd["cp.resnet.conv1.weight"].shape) == (64, 3, 7, 7)
    assert tuple(sd["cp.resnet.layer2.0.downsample.0.weight"].shape) == (128, 64, 1, 1)
    assert tuple(sd["cp.arm32.conv_atten.weight"].shape) == (128, 128, 1, 1)
    assert tuple(sd["ffm.conv1.weight"].shape) == (64, 256, 1, 1)
    assert tuple(sd["conv_out.conv_out.weight"].shape) == (19, 256, 1, 1)
    assert tuple(sd["conv_out16.conv_out.weight"].shape) == (19, 64, 1, 1)
    assert not any(k.startswith("sp.") for k in sd)  # the unused spatial path is not built
    assert sum(k.endswith(".num_batches_tracked") for k in sd) == 31  # 20 backbone + 11 head


def test_bisenet_conversion_strips_dataparallel_and_adds_bn_counters() -> None:
    sd = {k: v for k, v in BiSeNet().state_dict().items()
          if not k.endswith("num_batches_tracked")}
    out = convert_bisenet_state_dict({f"module.{k}": v for k, v in sd.items()})
    assert set(out) == set(BiSeNet().state_dict())
    with pytest.raises(KeyConversionError, match="ffm.conv1.weight"):
        convert_bisenet_state_dict({"ffm.conv1.weight": sd["ffm.conv1.weight"],
                                    "module.ffm.conv1.weight": sd["ffm.conv1.weight"]})


def test_bisenet_forward_shapes() -> None:
    net = BiSeNet().eval()
    with torch.inference_mode():
        out = net(torch.zeros(1, 3, 64, 96))
    assert [tuple(o.shape) for o in out] == [(1, 19, 64, 96)] * 3


def states(n: int, layers: int = 5, width: int = 3) -> torch.Tensor:
    """States whose value is their time index + 1 (zero padding stays recognisable)."""
    t = torch.arange(1, n + 1, dtype=torch.float32).view(1, n, 1, 1)
    return t.expand(1, n, layers, width).clone()


def test_frame_windows_follow_the_official_index_rule() -> None:
    n_samples = 16_000 * 2  # 2 s: 100 states, 50 frames at 25 fps
    windows = audio.frame_windows(states(1500), n_samples, 25, 50)
    assert windows.shape == (50, 10 * 5, 3)
    first = windows[0, ::5, 0]  # one value per time step of the window
    assert first.tolist() == [0, 0, 0, 0, 1, 2, 3, 4, 5, 6]  # 4 zero states in front
    assert windows[10, ::5, 0].tolist() == list(range(17, 27))  # frame i starts at state 2i
    assert windows[49, ::5, 0].tolist() == [95, 96, 97, 98, 99, 100, 0, 0, 0, 0]  # trimmed
    assert (windows[3].view(10, 5, 3) == windows[3].view(10, 5, 3)[:, :1]).all()  # time-major


def test_frame_windows_at_30_fps_and_past_the_audio() -> None:
    windows = audio.frame_windows(states(1500), 16_000, 30, 40)  # 1 s: 30 frames of audio
    # 4 zero states in front (2 * ceil(50 / 30)); frame 1 starts at floor(50 / 30) = 1
    assert windows[1, ::5, 0].tolist() == [0, 0, 0, 1, 2, 3, 4, 5, 6, 7]
    assert windows[2, ::5, 0].tolist() == list(range(10))  # starts at floor(10 / 3) = 3
    assert windows.shape == (40, 50, 3)
    assert (windows[39] == 0).all()  # frames past the audio get zero windows, not an error


def test_frame_windows_reject_a_bad_rate_and_allow_no_frames() -> None:
    with pytest.raises(ValueError, match="fps"):
        audio.frame_windows(states(10), 16_000, 0, 5)
    assert audio.frame_windows(states(10), 16_000, 25, 0).shape == (0, 50, 3)


def test_segments_split_at_30_seconds() -> None:
    parts = audio.segments(np.zeros(16_000 * 61, dtype=np.float32))
    assert [len(p) for p in parts] == [480_000, 480_000, 16_000]


def test_positional_table_is_the_sinusoid() -> None:
    pe = positional_table(50)
    assert pe.shape == (1, 50, 384) and pe.dtype == torch.float32
    p, i = 7, 10
    w = math.exp(-(2 * i) * math.log(10000.0) / 384)
    assert pe[0, p, 2 * i].item() == pytest.approx(math.sin(p * w), abs=1e-6)
    assert pe[0, p, 2 * i + 1].item() == pytest.approx(math.cos(p * w), abs=1e-6)
    with pytest.raises(ValueError):
        positional_table(5001)


def test_crop_box_and_region_follow_pil_semantics() -> None:
    assert parsing.crop_box((60, 60, 220, 260)) == (-10, 10, 290, 310)
    image = np.arange(5 * 4 * 3, dtype=np.uint8).reshape(5, 4, 3)
    region = parsing.crop_region(image, (-1, 3, 2, 7))
    assert region.shape == (4, 3, 3)
    assert (region[:, 0] == 0).all() and (region[2:] == 0).all()  # outside: black
    np.testing.assert_array_equal(region[:2, 1:], image[3:5, 0:2])
    assert (parsing.crop_region(image, (10, 10, 12, 11)) == 0).all()


def test_class_mask_rules() -> None:
    classes = np.zeros((512, 512), dtype=np.int64)
    classes[100:400, 150:350] = 1  # skin
    classes[200:260, 230:270] = 10  # nose
    classes[300:330, 220:280] = 12  # upper lip
    classes[420:500, 200:300] = 14  # neck
    raw = parsing.class_mask(classes, parsing.ParsingMode.RAW)
    neck = parsing.class_mask(classes, parsing.ParsingMode.NECK)
    jaw = parsing.class_mask(classes, parsing.ParsingMode.JAW)
    assert set(np.unique(raw)) == {0, 255}
    assert raw[150, 200] == 255 and raw[230, 250] == 0 and raw[310, 250] == 255
    assert raw[450, 250] == 0 and neck[450, 250] == 255
    assert jaw[230, 250] == 0  # the nose stays out
    assert jaw[405, 250] == 255  # the cone kernel grows the skin downwards at the centre
    assert jaw[405, 152] == 0  # ... but not at the cheeks outside the centre band


def test_blend_mask_keeps_the_lower_face_and_blurs() -> None:
    region_mask = np.full((100, 100), 255, dtype=np.uint8)
    mask = parsing.blend_mask(region_mask, (20, 20, 80, 90))
    assert mask.shape == (100, 100) and mask.dtype == np.uint8
    assert mask[10, 50] == 0 and mask[30, 50] == 0  # above the half line: nothing
    assert mask[75, 50] == 255  # well inside the face box, below the line
    assert mask[75, 5] == 0  # outside the face box
    assert 0 < mask[50, 50] < 255  # the blurred edge at the half line
