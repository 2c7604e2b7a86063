"""Source of the register-mode kernel: a tiny network trained one sample at a time.

With batch 1, an elementwise loss (mse, huber, mae, quantile) and a
non-softmax output, and few enough parameters (``_config.GEN_REG_PARAMS``),
the whole epoch keeps every weight, bias, activation and delta in a local
variable: the parameters are read into locals once, the samples stream
through straight-line code (one statement per neuron, no arrays, so no
possible aliasing stops LLVM from keeping them in registers and packing
neighbouring neurons into SIMD operations), and the locals are written
back at the end (or before returning on a non-finite loss).  The arithmetic
is that of the loop kernel of ``source.py`` operation for operation, so
both give bit-identical results.  A sigmoid or tanh layer's activations are
one call on the tuple of its pre-activations (``approx.sigmoid_tuple`` /
``tanh_tuple``): in float32 one vector, each lane bit for bit the scalar
formula (whose division and polynomial, neuron after neuron, took most of
a 2-8-1 step).
"""

from ..spec import SIGMOID, TANH

#: The tuple form of each activation that has one.
_TUPLE = {SIGMOID: "sigmoid_tuple", TANH: "tanh_tuple"}


def _w(l, j, k):
    return f"w{l}_{j}_{k}"


def _in(l, k):
    return f"x{k}" if l == 0 else f"a{l - 1}_{k}"


def _store(sizes, ind):
    """Lines writing every parameter local back to ``params``."""
    lines = []
    off = 0
    for l in range(len(sizes) - 1):
        ni, no = sizes[l], sizes[l + 1]
        for j in range(no):
            for k in range(ni):
                lines.append(f"{ind}params[{off + j * ni + k}] = {_w(l, j, k)}")
        for j in range(no):
            lines.append(f"{ind}params[{off + ni * no + j}] = b{l}_{j}")
        off += ni * no + no
    return "\n".join(lines) + "\n"


def register_kernel(sizes, acts):
    """Text of ``epoch`` (same signature and results as the loop kernel) for ``sizes`` and the
    layers' activation codes ``acts``."""
    L = len(sizes) - 1
    ind1, ind2, ind3 = " " * 4, " " * 8, " " * 12
    load = []
    off = 0
    for l in range(L):
        ni, no = sizes[l], sizes[l + 1]
        for j in range(no):
            for k in range(ni):
                load.append(f"{ind1}{_w(l, j, k)} = params[{off + j * ni + k}]")
        for j in range(no):
            load.append(f"{ind1}b{l}_{j} = params[{off + ni * no + j}]")
        off += ni * no + no
    body = [f"{ind2}r = order[start] if shuffle else start"]
    body += [f"{ind2}x{k} = X[r, {k}]" for k in range(sizes[0])]
    for l in range(L):
        ni, no = sizes[l], sizes[l + 1]
        vec = _TUPLE.get(acts[l]) if no > 1 else None
        for j in range(no):
            terms = "".join(f" + {_in(l, k)} * {_w(l, j, k)}" for k in range(ni))
            body.append(f"{ind2}z{l}_{j} = b{l}_{j}{terms}")
            if not vec:
                body.append(f"{ind2}a{l}_{j} = T(act(z{l}_{j}, runtime(A{l}), al{l}))")
        if vec:
            outs = ", ".join(f"a{l}_{j}" for j in range(no))
            ins = ", ".join(f"z{l}_{j}" for j in range(no))
            body.append(f"{ind2}{outs} = {vec}(({ins},))")
    last = L - 1
    body.append(f"{ind2}total = 0.0")
    for k in range(sizes[-1]):
        body.append(f"{ind2}e, d{last}_{k} = elem_delta(a{last}_{k}, z{last}_{k}, "
                    f"target(y, r, runtime({k}), runtime(False)), runtime(LOSS), "
                    f"runtime(A{last}), lp, one)")
        body.append(f"{ind2}total += e")
    body.append(f"{ind2}if not math.isfinite(total):")
    body.append(_store(sizes, ind3).rstrip("\n"))
    body += [f"{ind3}out[0] = total", f"{ind3}out[1] = done", f"{ind3}return steps"]
    for l in range(L - 1, -1, -1):
        ni, no = sizes[l], sizes[l + 1]
        if l > 0:
            for k in range(ni):
                terms = "".join(f" + d{l}_{j} * {_w(l, j, k)}" for j in range(no))
                body.append(f"{ind2}d{l - 1}_{k} = T(mul_dact(zero{terms}, a{l - 1}_{k}, "
                            f"z{l - 1}_{k}, runtime(A{l - 1}), al{l - 1}))")
        body.append(f"{ind2}if decaying:")
        for j in range(no):
            for k in range(ni):
                body.append(f"{ind3}{_w(l, j, k)} = decayed({_w(l, j, k)}, dec)")
        for j in range(no):
            body.append(f"{ind2}b{l}_{j} = sgd_step(b{l}_{j}, d{l}_{j}, step)")
            body.append(f"{ind2}g = step * d{l}_{j}")
            for k in range(ni):  # the rank-1 term (step d_j) a_k, as in the loop kernel
                body.append(f"{ind2}{_w(l, j, k)} = sgd_step({_w(l, j, k)}, {_in(l, k)}, g)")
    body += [f"{ind2}epoch_total += total", f"{ind2}done += 1", f"{ind2}steps += 1"]
    return '''

@njit(**JIT)
def epoch(params, lparams, X, y, order, batch_size, shuffle, acts, pre, deltas, ybuf, cap,
          hyper, grad, state, t0, out):
    """One plain-SGD epoch, batch 1, every value in a local; returns the steps taken.

    As ``fastbp._kernels.small.small_epoch`` (``acts``, ``pre``, ``deltas``,
    ``ybuf``, ``cap``, ``grad``, ``state`` and ``t0`` are unused: nothing
    leaves registers).
    """
    T = params.dtype.type
    step = T(hyper[H_LR])
    dec = T(decay_factor(hyper[H_LR], hyper[H_WD]))
    decaying = dec != T(1.0)
    zero = T(0.0)
    one = T(1.0)
    lp = lparams[L - 1, LP_COL]
''' + "".join(f"    al{l} = lparams[{l}, ALPHA_COL]\n" for l in range(L)) + "\n".join(load) + '''
    N = X.shape[0]
    epoch_total = 0.0
    done = 0
    steps = 0
    for start in range(N):
''' + "\n".join(body) + "\n" + _store(sizes, ind1) + '''    out[0] = epoch_total / max(done, 1)
    out[1] = done
    return steps
'''
