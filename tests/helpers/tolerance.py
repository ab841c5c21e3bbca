"""Numeric comparisons whose tolerance holds on every CPU.

Float rounding differs between kernel sets (``ATEN_CPU_CAPABILITY`` default / avx2 / avx512, and
NEON on arm64): the same maths agrees to a few units in the last place *of the values' magnitude*,
not to a fixed absolute number. A fixed ``1e-5`` is 84 ulps for values near 1 but less than one
ulp near 100. So every tolerance here is either

* a stated elementwise parity tolerance (``atol`` / ``rtol``), passed through unchanged, or
* ``ulps`` units of the dtype's precision at the magnitude of the expected values:
  ``ulps * eps(dtype) * max|expected|``,

or the sum of both. A failure names the worst element and its error in ulps of that magnitude.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def eps(dtype: Any) -> float:
    """Machine epsilon of a numpy or torch floating dtype."""
    if isinstance(dtype, torch.dtype):
        return float(torch.finfo(dtype).eps)
    return float(np.finfo(dtype).eps)


def as_array(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (x.float() if x.dtype in (torch.float16, torch.bfloat16) else x).numpy()
    return np.asarray(x)


def float_dtype(*arrays: np.ndarray) -> np.dtype:
    """The coarsest floating dtype among the operands: that precision bounds the agreement."""
    floats = [a.dtype for a in arrays if np.issubdtype(a.dtype, np.floating)]
    if not floats:
        return np.dtype(np.float64)
    return max(floats, key=lambda d: np.finfo(d).eps)


def scaled_atol(expected: Any, ulps: float, dtype: Any = None) -> float:
    """``ulps`` units of ``dtype``'s precision at the magnitude of ``expected``."""
    e = as_array(expected)
    d = float_dtype(e) if dtype is None else dtype
    magnitude = float(np.abs(e).max()) if e.size else 0.0
    return ulps * eps(d) * magnitude


def assert_close(
    actual: Any,
    expected: Any,
    *,
    what: str,
    ulps: float = 0.0,
    atol: float = 0.0,
    rtol: float = 0.0,
    dtype: Any = None,
) -> None:
    """``|actual - expected| <= atol + rtol * |expected| + ulps * eps(dtype) * max|expected|``.

    ``dtype`` defaults to the coarsest floating dtype of the two operands (float32 outputs
    compared with float64 references are float32 precision). Shapes must match exactly.
    """
    a, e = as_array(actual), as_array(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != expected {e.shape}"
    d = float_dtype(a, e) if dtype is None else dtype
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    assert np.isfinite(a64).all(), f"{what}: non-finite values"
    unit = eps(d) * (float(np.abs(e64).max()) if e64.size else 0.0)
    bound = atol + rtol * np.abs(e64) + ulps * unit
    err = np.abs(a64 - e64)
    if err.size and bool((err > bound).any()):
        i = np.unravel_index(int(np.argmax(err - bound)), err.shape) if err.ndim else ()
        allowed = float(np.broadcast_to(bound, err.shape)[i])
        in_ulps = f"{float(err[i]) / unit:.1f} ulps of the magnitude" if unit else "exact expected"
        raise AssertionError(
            f"{what}: {int((err > bound).sum())}/{err.size} values outside tolerance; worst at "
            f"{tuple(int(j) for j in i)}: {float(a64[i])!r} vs {float(e64[i])!r}, error "
            f"{float(err[i]):.3g} ({in_ulps}) > allowed {allowed:.3g} "
            f"(atol={atol}, rtol={rtol}, ulps={ulps}, eps={eps(d):.3g}, dtype={d})"
        )


def assert_stat_close(
    actual: float,
    expected: float,
    *,
    magnitude: Any,
    ulps: float,
    what: str,
    dtype: Any = np.float32,
) -> None:
    """A summary statistic (mean, std, sum / n) of ``dtype`` values whose largest magnitude is
    ``max|magnitude|``: rounding moves it by a few ulps of that magnitude, never by a fixed
    absolute amount."""
    allowed = scaled_atol(magnitude, ulps, dtype)
    err = abs(float(actual) - float(expected))
    assert err <= allowed, (
        f"{what}: {float(actual)!r} vs {float(expected)!r}, error {err:.3g} > {allowed:.3g} "
        f"({ulps} ulps of {dtype} at magnitude {float(np.abs(as_array(magnitude)).max()):.3g})"
    )
