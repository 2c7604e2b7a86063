"""Accuracy of the vectorisable float32 exp/tanh/sigmoid used by the kernels."""

import numpy as np
import pytest
from numba import njit

from fastbp._config import JIT
from fastbp._kernels.approx import vexp, vsigmoid, vtanh


@njit(**JIT)  # the kernels' own flags (fast-math set included)
def _apply_exp(a, out):
    for i in range(a.size):
        out[i] = vexp(a[i])


@njit(**JIT)  # the kernels' own flags (fast-math set included)
def _apply_tanh(a, out):
    for i in range(a.size):
        out[i] = vtanh(a[i])


@njit(**JIT)  # the kernels' own flags (fast-math set included)
def _apply_sigmoid(a, out):
    for i in range(a.size):
        out[i] = vsigmoid(a[i])


FUNCS = {
    "exp": (_apply_exp, np.exp),
    "tanh": (_apply_tanh, np.tanh),
    "sigmoid": (_apply_sigmoid, lambda x: 1.0 / (1.0 + np.exp(-x))),
}
ULP = {"exp": 1.5, "sigmoid": 2.5, "tanh": 2.5}  # as documented in fastbp/_kernels/approx.py
X = np.concatenate([np.linspace(-100, 100, 400_001), np.linspace(-2, 2, 400_001),
                    np.geomspace(1e-30, 1e-2, 1001), -np.geomspace(1e-30, 1e-2, 1001)])


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_float32_within_documented_ulp(name):
    kernel, ref_fn = FUNCS[name]
    x = X.astype(np.float32)
    got = np.empty_like(x)
    kernel(x, got)
    with np.errstate(over="ignore"):
        ref = ref_fn(x.astype(np.float64))
    ok = np.isfinite(ref) & (np.abs(ref) > 1e-37) & (np.abs(ref) < 3e38)
    spacing = np.spacing(np.abs(ref[ok]).astype(np.float32)).astype(np.float64)
    ulp = np.abs(got[ok].astype(np.float64) - ref[ok]) / spacing
    assert ulp.max() <= ULP[name], f"{name}: {ulp.max():.2f} ulp"


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_float32_special_values(name):
    kernel, ref_fn = FUNCS[name]
    x = np.array([np.nan, np.inf, -np.inf, 0.0, 500.0, -500.0], dtype=np.float32)
    got = np.empty_like(x)
    kernel(x, got)
    with np.errstate(over="ignore"):
        ref = ref_fn(x.astype(np.float64)).astype(np.float32)
    assert np.isnan(got[0])
    np.testing.assert_array_equal(got[1:], ref[1:])


@pytest.mark.parametrize("name", sorted(FUNCS))
def test_float64_uses_libm_accuracy(name):
    kernel, ref_fn = FUNCS[name]
    x = np.linspace(-30, 30, 10001)
    got = np.empty_like(x)
    kernel(x, got)
    np.testing.assert_allclose(got, ref_fn(x), rtol=1e-15, atol=0)  # libm under the fast-math set: a few ulp


from fastbp._kernels.approx import sigmoid_tuple, tanh_tuple  # noqa: E402


@njit(**JIT)
def _tuple8(a, out, which):
    """The tuple forms on 8 elements at a time (a's length a multiple of 8)."""
    for i in range(0, a.size, 8):
        t = (a[i], a[i + 1], a[i + 2], a[i + 3], a[i + 4], a[i + 5], a[i + 6], a[i + 7])
        r = sigmoid_tuple(t) if which == 0 else tanh_tuple(t)
        for k in range(8):
            out[i + k] = r[k]


@njit(**JIT)
def _tuple3(a, out, which):
    """The tuple forms on 3 elements at a time (padded to a vector of 4)."""
    for i in range(0, a.size - 2, 3):
        r = sigmoid_tuple((a[i], a[i + 1], a[i + 2])) if which == 0 else \
            tanh_tuple((a[i], a[i + 1], a[i + 2]))
        out[i], out[i + 1], out[i + 2] = r


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("which", [0, 1], ids=["sigmoid", "tanh"])
def test_tuple_forms_are_the_scalar_functions_bit_for_bit(which, dtype):
    """``sigmoid_tuple`` / ``tanh_tuple`` (one vector in float32) give exactly the scalar
    ``vsigmoid`` / ``vtanh`` of every element, special values included."""
    rng = np.random.default_rng(which)
    special = [np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-40, 88.8, -88.8, 200.0, -200.0, 1e-8, 9.0]
    a = np.concatenate([special, rng.standard_normal(4092) * 8,
                        rng.standard_normal(4096) * 0.01]).astype(dtype)
    ref = np.empty_like(a)
    (_apply_sigmoid if which == 0 else _apply_tanh)(a, ref)
    for f in (_tuple8, _tuple3):
        out = np.zeros_like(a)
        f(a, out, which)
        n = a.size if f is _tuple8 else a.size - a.size % 3
        assert np.array_equal(out[:n], ref[:n], equal_nan=True)
        bits = np.int32 if dtype == np.float32 else np.int64
        assert np.array_equal(out[:n].view(bits), ref[:n].view(bits))
