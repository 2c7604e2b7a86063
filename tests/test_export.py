"""fastbp.export: ONNX graphs run in onnxruntime and C headers compiled with the
system C compiler must reproduce ``net.predict`` for every activation, output,
dtype, batch norm and batch size; bad input gives clear errors and never a
half-written or destroyed file."""

import os
import re
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastbp
from fastbp import spec
from fastbp.export import to_c, to_onnx
from fastbp.export.c_header import _C, quantize_rows
from fastbp.export.layers import plan

HIDDEN = spec.HIDDEN_ACTIVATIONS
OUTPUTS = spec.OUTPUT_ACTIVATIONS
DTYPES = ("float32", "float64")
#: (rtol, atol) against net.predict: float32 nets use fastbp's few-ulp vector
#: exp/tanh and folded batch norm is rounded once to float32.
TOL = {"float32": (2e-5, 2e-6), "float64": (1e-11, 1e-13)}
CC = shutil.which("cc")
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O1"]


def make_net(hidden="relu", output="identity", dtype="float64", sizes=(5, 8, 6, 3), bn=True,
             seed=0):
    """A network with random biases and non-trivial batch-norm statistics
    (first hidden layer) so that folding is really tested."""
    n_hidden = len(sizes) - 2
    loss = {"softmax": "cross_entropy", "exp": "poisson"}.get(output, "mse")
    bn_flags = [bool(bn)] + [False] * (n_hidden - 1) if n_hidden else False
    net = fastbp.MLP(list(sizes), activation=hidden, output=output, loss=loss, dtype=dtype,
                     seed=seed, leaky_slope=0.13, elu_alpha=0.7, batch_norm=bn_flags)
    rng = np.random.default_rng(seed + 1)
    for b in net.biases:
        b[:] = rng.normal(0.0, 0.5, b.shape)
    for l in range(n_hidden):
        if net.batch_norm[l]:
            m = sizes[l + 1]
            net.bn_gamma[l][:] = rng.uniform(0.5, 2.0, m)
            net.bn_beta[l][:] = rng.normal(0.0, 0.5, m)
            net.running_mean[l][:] = rng.normal(0.0, 1.0, m)
            net.running_var[l][:] = rng.uniform(0.2, 3.0, m)
    return net


def inputs(n_in, dtype, n=40, seed=3):
    """Moderate rows plus large ones (activation tails: softplus, elu, gelu, sigmoid)."""
    X = np.random.default_rng(seed).normal(0.0, 1.5, (n, n_in))
    X[:6] *= 25.0
    return X.astype(dtype)


def assert_close(out, ref, dtype, output=None):
    rtol, atol = TOL[np.dtype(dtype).name]
    assert out.dtype == ref.dtype
    if output == "exp":  # rates: an absolute error in the log-rate z is relative in exp(z);
        # below the smallest normal number, runtimes flush or keep subnormals differently
        tiny = np.finfo(out.dtype).tiny
        out, ref = np.log(np.maximum(out, tiny)), np.log(np.maximum(ref, tiny))
    np.testing.assert_allclose(out, ref, rtol=rtol, atol=atol)


# exp (poisson) outputs last, so the other cases keep their seeds
CASES = [(h, o, d) for d in DTYPES for h in HIDDEN for o in OUTPUTS if o != "exp"]
CASES += [(h, "exp", d) for d in DTYPES for h in HIDDEN]


# ------------------------------------------------------------------- shared
def test_plan_folds_batch_norm_exactly_in_float64():
    net = make_net("tanh", "identity", "float64")
    p = plan(net)
    l = 0
    s = net.bn_gamma[l] / np.sqrt(net.running_var[l] + net.bn_eps)
    np.testing.assert_allclose(p.layers[0].W, net.weights[0] * s[:, None], rtol=1e-15)
    np.testing.assert_allclose(p.layers[0].b, s * (net.biases[0] - net.running_mean[l])
                               + net.bn_beta[l], rtol=1e-15, atol=1e-16)
    assert np.array_equal(p.layers[1].W, net.weights[1])  # no batch norm: untouched
    assert [x.activation for x in p.layers] == list(net.activations)
    assert p.dtype == np.float64 and (p.n_in, p.n_out) == (5, 3)


@pytest.mark.parametrize("act,alpha", [("leaky_relu", 0.13), ("elu", 0.7), ("gelu", 0.0)])
def test_plan_activation_parameters(act, alpha):
    p = plan(make_net(act, "identity"))
    assert p.layers[0].alpha == alpha and p.layers[1].activation == act


@pytest.mark.parametrize("dtype", DTYPES)
def test_c_literals_round_trip(dtype):
    c = _C(np.dtype(dtype))
    rng = np.random.default_rng(0)
    vals = np.concatenate([rng.normal(0, 1, 200) * 10.0 ** rng.integers(-40, 30, 200),
                           [0.0, -0.0, 1.0, 0.1, 1e-5, 3e38, 1e-44, 123456789.0]])
    vals = vals.astype(dtype)
    for v in vals:
        text = c.lit(v)
        back = np.dtype(dtype).type(float(text.rstrip("f")))
        assert back == v and (text.endswith("f") == (dtype == "float32")), (v, text)


# --------------------------------------------------------------------- errors
def _sk_classifier(**kw):
    from fastbp.sklearn import MLPClassifier
    return MLPClassifier(hidden_layer_sizes=(6,), max_iter=3, random_state=0, **kw)


@pytest.mark.parametrize("export", [to_onnx, to_c])
def test_unsupported_targets(tmp_path, export):
    path = tmp_path / "m.out"
    with pytest.raises(TypeError, match="fastbp.MLP or a fitted"):
        export(object(), path)
    with pytest.raises(TypeError, match="fastbp.MLP"):
        export(fastbp.SGD(), path)
    with pytest.raises(TypeError, match="float32' or 'float64"):
        export(make_net(), path, dtype="int32")
    with pytest.raises(TypeError, match="path must be a str"):
        export(make_net(), 42)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("export", [to_onnx, to_c])
def test_unfitted_and_foreign_estimators(tmp_path, export):
    pytest.importorskip("sklearn")
    path = tmp_path / "m.out"
    with pytest.raises(ValueError, match="not fitted"):
        export(_sk_classifier(), path)
    from sklearn.neural_network import MLPClassifier as SkMLP
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = SkMLP(hidden_layer_sizes=(3,), max_iter=2).fit(np.eye(4), [0, 1, 0, 1])
    with pytest.raises(TypeError, match="skl2onnx"):
        export(sk, path)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("export", [to_onnx, to_c])
def test_bad_paths(tmp_path, export):
    net = make_net()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export(net, tmp_path / "missing" / "m.out")
    (tmp_path / "adir").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        export(net, tmp_path / "adir")
    assert sorted(os.listdir(tmp_path)) == ["adir"]
    assert os.listdir(tmp_path / "adir") == []


@pytest.mark.parametrize("export", [to_onnx, to_c])
def test_failure_keeps_existing_file(tmp_path, export, monkeypatch):
    if export is to_onnx:
        pytest.importorskip("onnx")
    path = tmp_path / "m.out"
    path.write_bytes(b"precious")
    net = make_net()
    with pytest.raises(TypeError):  # rejected before anything is written
        export(net, path, dtype="float16")

    def boom(src, dst):
        assert os.path.getsize(src) > 0  # the temporary file was complete
        raise OSError(28, "injected replace failure")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="injected"):
        export(net, path)
    monkeypatch.undo()
    assert path.read_bytes() == b"precious"
    assert os.listdir(tmp_path) == ["m.out"]
    export(net, path)  # and a good export replaces it
    assert path.read_bytes() != b"precious"
    assert os.listdir(tmp_path) == ["m.out"]


def test_float32_overflow_after_folding_is_reported(tmp_path):
    net = make_net("relu", "identity", "float64")
    net.bn_gamma[0][:] = 1e300
    with pytest.raises(ValueError, match=r"folded in\) are not finite in float32.*'float64'"):
        to_c(net, tmp_path / "m.h", dtype="float32")
    net = make_net("relu", "identity", "float32")
    net.weights[1][0, 0] = np.nan  # written past MLP's checks, straight into the view
    with pytest.raises(ValueError, match="layer 1's weights are not finite"):
        to_c(net, tmp_path / "m.h")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name,exc", [("1model", ValueError), ("my-model", ValueError),
                                      ("", ValueError), ("int", ValueError),
                                      ("_model", ValueError), ("mödel", ValueError),
                                      ("a b", ValueError), (3, TypeError), (None, TypeError)])
def test_c_name_must_be_an_identifier(tmp_path, name, exc):
    with pytest.raises(exc, match="name"):
        to_c(make_net(), tmp_path / "m.h", name=name)
    assert os.listdir(tmp_path) == []


def test_onnx_missing_gives_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(ImportError, match=r"pip install fastbp\[onnx\]"):
        to_onnx(make_net(), tmp_path / "m.onnx")
    assert os.listdir(tmp_path) == []


def test_import_fastbp_does_not_import_onnx_or_sklearn():
    code = ("import sys, fastbp, fastbp.export; "
            "print(sorted(m for m in ('onnx', 'onnxruntime', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------- ONNX
def _ort_run(path, X):
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    return sess.run(["Y"], {"X": X})[0]


@pytest.mark.parametrize("hidden,output,dtype", CASES)
def test_onnx_matches_predict(tmp_path, hidden, output, dtype):
    pytest.importorskip("onnx")
    net = make_net(hidden, output, dtype)
    path = tmp_path / "m.onnx"
    proto = to_onnx(net, path)
    ops = {n.op_type for n in proto.graph.node}
    assert "Gemm" in ops and all(n.domain == "" for n in proto.graph.node)
    X = inputs(5, dtype)
    assert_close(_ort_run(path, X), net.predict(X), dtype, output)


@pytest.mark.parametrize("dtype", DTYPES)
def test_onnx_dynamic_batch_deep_and_mixed(tmp_path, dtype):
    pytest.importorskip("onnx")
    net = make_net(["gelu", "softplus", "elu", "leaky_relu"], "softmax", dtype,
                   sizes=(4, 9, 7, 5, 6, 3))
    path = tmp_path / "deep.onnx"
    to_onnx(net, path)
    X = inputs(4, dtype, n=37)
    for n in (1, 2, 37):
        assert_close(_ort_run(path, X[:n]), net.predict(X[:n]), dtype)
    proto = to_onnx(net, path)
    import onnx
    assert onnx.load(os.fspath(path)) == proto
    inp = proto.graph.input[0].type.tensor_type.shape.dim
    assert inp[0].dim_param == "N" and inp[1].dim_value == 4


def test_onnx_perceptron_and_dtype_override(tmp_path):
    pytest.importorskip("onnx")
    net = make_net("relu", "sigmoid", "float64", sizes=(3, 2))
    to_onnx(net, tmp_path / "p.onnx")
    X = inputs(3, "float64")
    assert_close(_ort_run(tmp_path / "p.onnx", X), net.predict(X), "float64")
    deep = make_net("tanh", "softmax", "float64")
    to_onnx(deep, tmp_path / "f32.onnx", dtype="float32")
    X = inputs(5, "float64")
    out = _ort_run(tmp_path / "f32.onnx", X.astype(np.float32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, deep.predict(X), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_onnx_estimators(tmp_path, dtype):
    pytest.importorskip("onnx")
    pytest.importorskip("sklearn")
    from fastbp.sklearn import MLPClassifier, MLPRegressor
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4)).astype(dtype)
    y = np.array(["a", "b", "c"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 0.5)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(7, 5), activation="elu", batch_norm=True,
                            max_iter=5, random_state=0).fit(X, y)
        reg = MLPRegressor(hidden_layer_sizes=(6,), activation="logistic", max_iter=5,
                           random_state=0).fit(X, X[:, 0] - X[:, 2])
        multi = MLPClassifier(hidden_layer_sizes=(6,), max_iter=5, random_state=0).fit(
            X, np.stack([X[:, 0] > 0, X[:, 3] > 0], axis=1).astype(int))
    to_onnx(clf, tmp_path / "clf.onnx")
    assert_close(_ort_run(tmp_path / "clf.onnx", X), clf.predict_proba(X), dtype)
    to_onnx(reg, tmp_path / "reg.onnx")
    assert_close(_ort_run(tmp_path / "reg.onnx", X), reg.predict(X).reshape(-1, 1), dtype)
    to_onnx(multi, tmp_path / "multi.onnx")
    assert_close(_ort_run(tmp_path / "multi.onnx", X), multi.predict_proba(X), dtype)


# -------------------------------------------------------------------------- C
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler (cc) on PATH")


def compile_and_run(tmp_path, models):
    """Compile one driver including every ``(name, header, X, n_out)`` and run it;
    return each model's outputs (one ``<name>.out`` file per model)."""
    lines = ["#include <stdio.h>", "#include <stdlib.h>"]
    lines += [f'#include "{os.path.basename(h)}"' for _, h, _, _ in models]
    lines += ["static int run(const char *in, const char *out, size_t nx, size_t ny, size_t size,",
              "               void *x, void *y, void (*go)(const void *, void *))",
              "{",
              "    FILE *f = fopen(in, \"rb\");",
              "    size_t got;",
              "    if (!f) return 1;",
              "    got = fread(x, size, nx, f);",
              "    fclose(f);",
              "    if (got != nx) return 2;",
              "    go(x, y);",
              "    f = fopen(out, \"wb\");",
              "    if (!f) return 3;",
              "    got = fwrite(y, size, ny, f);",
              "    fclose(f);",
              "    return got != ny;",
              "}"]
    calls = []
    for name, _, X, n_out in models:
        n = X.shape[0]
        T = f"{name}_scalar"
        X.tofile(tmp_path / f"{name}.in")
        lines += [f"static void go_{name}(const void *x, void *y)",
                  f"{{ {name}_predict((const {T} *)x, ({T} *)y, {n}); }}",
                  f"static {T} x_{name}[{X.size}], y_{name}[{n * n_out}];"]
        calls.append(f'    if (run("{name}.in", "{name}.out", {X.size}, {n * n_out}, '
                     f"sizeof({T}), x_{name}, y_{name}, go_{name})) return 1;")
    lines += ["int main(void)", "{", *calls, "    return 0;", "}"]
    (tmp_path / "driver.c").write_text("\n".join(lines) + "\n")
    # a second translation unit includes the headers too: static inline, no clashes
    second = "".join(f'#include "{os.path.basename(h)}"\n' for _, h, _, _ in models)
    (tmp_path / "second.c").write_text(second + "int second_unit(void) { return 0; }\n")
    res = subprocess.run([CC, *CFLAGS, "driver.c", "second.c", "-o", "driver", "-lm"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    res = subprocess.run(["./driver"], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return [np.fromfile(tmp_path / f"{name}.out", dtype=X.dtype).reshape(X.shape[0], n_out)
            for name, _, X, n_out in models]


@pytest.fixture(scope="module")
def c_results(tmp_path_factory):
    """Every (hidden, output, dtype) case compiled into one driver."""
    if CC is None:
        pytest.skip("no C compiler (cc) on PATH")
    tmp = tmp_path_factory.mktemp("c_export")
    models, refs = [], {}
    for k, (hidden, output, dtype) in enumerate(CASES):
        net = make_net(hidden, output, dtype, seed=k)
        name = f"m{k}_{hidden}_{output}"
        to_c(net, tmp / f"{name}.h", name=name)
        X = inputs(5, dtype, seed=k)
        models.append((name, tmp / f"{name}.h", X, 3))
        refs[(hidden, output, dtype)] = net.predict(X)
    outs = compile_and_run(tmp, models)
    return {case: (out, refs[case]) for case, out in zip(CASES, outs)}


@needs_cc
@pytest.mark.parametrize("hidden,output,dtype", CASES)
def test_c_matches_predict(c_results, hidden, output, dtype):
    out, ref = c_results[(hidden, output, dtype)]
    assert_close(out, ref, dtype, output)


@needs_cc
def test_c_shapes_overrides_and_estimators(tmp_path):
    pytest.importorskip("sklearn")
    from fastbp.sklearn import MLPClassifier
    rng = np.random.default_rng(1)
    Xf = rng.normal(size=(50, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(6, 5), activation="gelu", batch_norm=True,
                            max_iter=5, random_state=0).fit(Xf, (Xf[:, 0] > 0).astype(int))
    nets = {
        "perceptron": make_net("relu", "softmax", "float64", sizes=(4, 3)),
        "deep": make_net(["gelu", "softplus", "elu", "leaky_relu"], "tanh", "float32",
                         sizes=(4, 9, 7, 5, 6, 3)),
        "wide": make_net("sigmoid", "identity", "float64", sizes=(4, 40, 2)),
    }
    models, refs = [], []
    for name, net in nets.items():
        to_c(net, tmp_path / f"{name}.h", name=name)
        X = inputs(4, net.dtype, n=9)
        models.append((name, tmp_path / f"{name}.h", X, net.sizes[-1]))
        refs.append((net.predict(X), net.dtype))
    to_c(nets["wide"], tmp_path / "wide32.h", name="wide32", dtype="float32")
    X = inputs(4, "float32", n=9)
    models.append(("wide32", tmp_path / "wide32.h", X, 2))
    refs.append((nets["wide"].predict(X.astype(np.float64)).astype(np.float32), "float32"))
    text = to_c(clf, tmp_path / "clf.h", name="clf")
    assert "static const double clf_W0[24]" in text and "clf_gelu" in text
    X = Xf[:11].copy()
    models.append(("clf", tmp_path / "clf.h", X, 2))
    refs.append((clf.predict_proba(X), "float64"))
    for out, (ref, dtype) in zip(compile_and_run(tmp_path, models), refs):
        assert_close(out, ref, dtype)


def test_c_header_contents(tmp_path):
    net = make_net("softplus", "softmax", "float32")
    text = to_c(net, tmp_path / "iris.h", name="iris")
    assert (tmp_path / "iris.h").read_text() == text
    for piece in ("#ifndef FASTBP_IRIS_H", "typedef float iris_scalar;",
                  "#define IRIS_N_INPUTS 5", "#define IRIS_N_OUTPUTS 3",
                  "static inline void iris_predict(const float *x, float *y, size_t n)",
                  "expf", "logf"):
        assert piece in text
    code = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    for absent in ("malloc", "log1p", "expm1", "double", "static float", "static double"):
        assert absent not in code  # no allocation, libm only exp/tanh/log, no state


# ------------------------------------------------------------- int8 weights (C)
def test_quantize_rows():
    rng = np.random.default_rng(0)
    for dtype in DTYPES:
        W = (rng.normal(size=(6, 9)) * 10.0 ** rng.integers(-3, 3, (6, 1))).astype(dtype)
        W[2] = 0.0
        q, s = quantize_rows(W)
        assert q.dtype == np.int8 and s.dtype == W.dtype and s.shape == (6,)
        assert np.abs(q.astype(int)).max() <= 127 and s[2] == 1.0 and not q[2].any()
        rows = [0, 1, 3, 4, 5]
        assert (np.abs(q[rows].astype(int)).max(axis=1) == 127).all()
        err = np.abs(W.astype(np.float64) - q * s.astype(np.float64)[:, None])
        assert (err <= s.astype(np.float64)[:, None] * (0.5 + 1e-6)).all()


def test_quantize_must_be_known(tmp_path):
    with pytest.raises(ValueError, match="quantize must be None or 'int8'"):
        to_c(make_net(), tmp_path / "m.h", quantize="int4")
    assert os.listdir(tmp_path) == []


@needs_cc
def test_c_int8_weights(tmp_path):
    """The int8 header computes exactly the network with dequantized weights
    (NumPy reference), and stays close to the float network."""
    import naive
    cases = [("gelu", "softmax", "float64"), ("elu", "identity", "float32"),
             ("softplus", "sigmoid", "float64"), ("leaky_relu", "tanh", "float32")]
    models, refs = [], []
    for k, (hidden, output, dtype) in enumerate(cases):
        net = make_net(hidden, output, dtype, seed=k)
        name = f"q{k}"
        text = to_c(net, tmp_path / f"{name}.h", name=name, quantize="int8")
        assert f"static const signed char {name}_W0[40]" in text
        p = plan(net)
        deq = []
        for layer in p.layers:
            q, s = quantize_rows(layer.W)
            deq.append(q.astype(np.float64) * s.astype(np.float64)[:, None])
        ref_net = naive.Net(deq, [layer.b for layer in p.layers], net.activations, net.loss,
                            leaky_slope=0.13, elu_alpha=0.7)
        X = inputs(5, dtype, seed=k)[6:]  # moderate rows
        models.append((name, tmp_path / f"{name}.h", X, 3))
        refs.append((naive.forward(ref_net, X)[-1].astype(dtype), net.predict(X)))
    for out, (ref, pred) in zip(compile_and_run(tmp_path, models), refs):
        assert_close(out, ref, out.dtype)
        assert np.abs(out - pred).max() < 0.05 * (1.0 + np.abs(pred).max())
