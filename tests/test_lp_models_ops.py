"""The portable rewrites of W's 5-D ops equal the native ops."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pipeline.models.liveportrait import ops
from pipeline.models.liveportrait.keypoints import get_rotation_matrix, headpose_pred_to_degree
from pipeline.models.liveportrait.warping import WarpingNetwork
from tests.helpers.tolerance import assert_close, assert_stat_close

# numeric parity: CI runs these again under another ATEN_CPU_CAPABILITY
pytestmark = pytest.mark.parity


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("shape", [(2, 3, 5, 8, 10), (1, 4, 16, 64, 64)])
def test_grid_sample_3d_rewrite_equals_native(shape) -> None:
    g = gen(0)
    n, c, d, h, w = shape
    inp = torch.randn(shape, generator=g)
    # Range -1.4..1.4 puts many points partly or wholly outside the volume (zero padding).
    grid = torch.rand(n, 3, 7, 9, 3, generator=g) * 2.8 - 1.4
    grid[0, 0, 0, 0] = torch.tensor([1.0, -1.0, 1.0])  # exact edges
    grid[0, 0, 0, 1] = torch.tensor([5.0, 0.0, -7.0])  # far outside
    native = F.grid_sample(inp, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    assert_close(ops.grid_sample_3d(inp, grid), native, atol=1e-5, rtol=1e-5, what="grid_sample")
    assert (native == 0).any() and native.abs().max() > 0.1


def test_pool_and_upsample_rewrites_equal_native() -> None:
    x = torch.randn(2, 3, 4, 10, 6, generator=gen(1))
    assert_close(ops.avg_pool3d_hw(x), F.avg_pool3d(x, (1, 2, 2)), atol=1e-6, rtol=1e-6,
                 what="avg_pool3d")
    torch.testing.assert_close(ops.upsample_nearest3d_hw(x),
                               F.interpolate(x, scale_factor=(1, 2, 2)), atol=0, rtol=0)


def test_small_warping_network_same_with_portable_ops() -> None:
    """A scaled-down W (same code paths) gives the same outputs with the rewrites switched on."""
    torch.manual_seed(0)
    net = WarpingNetwork(num_kp=3, block_expansion=8, max_features=16, num_down_blocks=2,
                         reshape_channel=4, estimate_occlusion_map=True, dense_block_expansion=4,
                         dense_max_features=16, dense_num_blocks=2, dense_reshape_depth=4,
                         dense_compress=2).eval()
    g = gen(2)
    f_s = torch.randn(1, 4, 4, 16, 16, generator=g)
    kp_s = torch.randn(1, 3, 3, generator=g) * 0.6
    kp_d = kp_s + 0.2 * torch.randn(1, 3, 3, generator=g)
    with torch.no_grad():
        assert ops.set_portable_ops(net, False) == 6
        native = net(f_s, kp_driving=kp_d, kp_source=kp_s)
        ops.set_portable_ops(net, True)
        portable = net(f_s, kp_driving=kp_d, kp_source=kp_s)
    for a, b in zip(native, portable, strict=True):
        assert_close(b, a, atol=1e-5, rtol=1e-5, what="portable W output")
    assert native.out.std() > 1e-3


def test_needs_portable_ops_only_on_old_mps() -> None:
    assert not ops.needs_portable_ops("cpu")
    old = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]) < (2, 9)
    assert ops.needs_portable_ops("mps") == old


def test_headpose_and_rotation_conventions() -> None:
    """Bin 32.5 is 0 degrees; R is (Rz Ry Rx)^T applied to row vectors."""
    logits = torch.full((1, 66), -1e4)
    logits[0, 32:34] = 0.0  # equal mass on bins 32 and 33 -> 32.5 * 3 - 97.5 = 0
    # degrees = sum(p * bin) * 3 - 97.5: rounding at the magnitude of 97.5, not of 0
    assert_stat_close(headpose_pred_to_degree(logits).item(), 0.0, magnitude=97.5, ulps=8,
                      what="bin 32.5 in degrees")
    yaw90 = get_rotation_matrix(torch.zeros(1), torch.full((1,), 90.0), torch.zeros(1))
    x_axis = torch.tensor([[1.0, 0.0, 0.0]])
    assert_close(x_axis @ yaw90[0], torch.tensor([[0.0, 0.0, -1.0]]), ulps=8, what="yaw 90")


def test_half_precision_warping_keeps_fp32_geometry() -> None:
    """In bfloat16 (CPU's half type) the flow stays fp32 and the output near the fp32 one.

    The portable ops run here because the CPU's native avg_pool3d has no bfloat16 kernel.
    """
    torch.manual_seed(0)
    net = WarpingNetwork(num_kp=3, block_expansion=8, max_features=16, num_down_blocks=2,
                         reshape_channel=4, estimate_occlusion_map=True, dense_block_expansion=4,
                         dense_max_features=16, dense_num_blocks=2, dense_reshape_depth=4,
                         dense_compress=2).eval()
    ops.set_portable_ops(net, True)
    g = gen(3)
    f_s = torch.randn(1, 4, 4, 16, 16, generator=g)
    kp_s = torch.randn(1, 3, 3, generator=g) * 0.6
    kp_d = kp_s + 0.2 * torch.randn(1, 3, 3, generator=g)
    with torch.no_grad():
        ref = net(f_s, kp_driving=kp_d, kp_source=kp_s)
        net.to(torch.bfloat16)
        half = net(f_s.bfloat16(), kp_driving=kp_d.bfloat16(), kp_source=kp_s.bfloat16())
    assert half.deformation.dtype == torch.float32 and half.out.dtype == torch.bfloat16
    # bfloat16 has 8 significant bits: 6.4 bf16 ulps of the output's magnitude is 0.05 of it
    assert_close(half.out.float(), ref.out, ulps=6.4, dtype=torch.bfloat16, what="bf16 W output")


def test_native_grid_sample_accepts_half_features_with_fp32_grid() -> None:
    g = gen(4)
    inp = torch.randn(1, 2, 3, 6, 6, generator=g)
    grid = torch.rand(1, 2, 4, 4, 3, generator=g) * 2 - 1
    out = ops.GridSample3d(portable=False)(inp.bfloat16(), grid)
    assert out.dtype == torch.bfloat16
    # bfloat16 features: the stated 0.02 relative plus 6.4 bf16 ulps of the magnitude
    assert_close(out.float(), F.grid_sample(inp, grid, align_corners=False), rtol=0.02,
                 ulps=6.4, dtype=torch.bfloat16, what="bf16 grid_sample")
