"""Train and query networks from inside your own ``@njit`` code.

``net.state(batch_size=..., optimizer=...)`` hands out a :class:`NetState`:
a namedtuple of plain arrays that *share memory* with the Python
:class:`~fastbp.MLP` (``state.model.params is net.params``), plus private
workspace buffers.  Inference calls use inference mode (running batch-norm
statistics, no dropout); ``train_step`` trains as ``fit`` does.  Every function here is ``@njit`` and takes that state
first; what your loop trains is what ``net.predict`` and ``net.save`` see.

=====================================  =============================================
``predict(state, X, out)``             ``out[:] <- network(X)``; ``X`` (n, n_in)
``predict_one(state, x, out)``         one sample: ``x`` (n_in,), ``out`` (n_out,)
``loss(state, X, y[, w])``             batch-mean loss
``gradient(state, X, y[, w])``         batch-mean loss; gradient in ``state.work.grad``
``train_step(state, X, y[, w])``       one optimizer step (the state's SGD,
                                       momentum/Nesterov, Adam or AdamW); returns
                                       the batch-mean loss before the update
``train_step_one(state, x, y)``        the same for one sample (``y`` (n_out,))
``set_lr(state, lr)``                  set the optimizer's learning rate (e.g. a
                                       schedule in your loop); ``get_lr(state)``
``input_gradient(state, X, y, out)``   batch-mean loss; ``out`` (n, n_in) <- its
                                       gradient with respect to ``X``
``jacobian(state, X, out)``            ``out`` (n, n_out, n_in) <- d outputs / d ``X``
``jacobian_one(state, x, out)``        one sample: ``out`` (n_out, n_in)
=====================================  =============================================

Sparse input: each function above taking ``X`` has a ``sparse_`` twin taking
the three CSR arrays of ``X`` instead (``scipy.sparse.csr_matrix``'s
``data``, ``indices``, ``indptr``; ``len(indptr) - 1`` rows):
``sparse_predict(state, data, indices, indptr, out)``,
``sparse_loss(state, data, indices, indptr, y)``,
``sparse_gradient(state, data, indices, indptr, y)`` and
``sparse_train_step(state, data, indices, indptr, y)``.  ``data`` has the
network's dtype, the index arrays any integer type; indices need not be
sorted (duplicates add up).  The first layer touches only the non-zeros.

The optional ``w`` is a 1-D float array of per-sample weights (finite, ``>= 0``,
one per row): the loss becomes the weighted mean ``sum_i w_i E_i / sum_i w_i``
(PyTorch's convention) and the gradient and step follow it.  Weights summing
to 0 contribute nothing: ``loss`` and ``gradient`` return 0 (zero gradient)
and ``train_step`` takes no step and returns 0.  ``set_lr`` writes the rate
into ``state.hyper``, which the Python optimizer shares (``net.optimizer.lr``
sees it); it must be finite and ``>= 0``.

Targets ``y`` are ``(n, n_out)`` floats, ``(n,)`` integer class labels (the
cross-entropy), or ``(n,)`` values for a single-output network.  Arrays must
have the network's dtype: a mismatch is a compile-time ``TypingError`` saying
so (the one-sample functions convert).  Every
entry checks shapes, the batch capacity and label range first and raises
``ValueError`` on misuse, so nothing is ever written out of bounds.  A state
is not thread-safe: give each thread its own (``net.state()`` again; they
share ``params``).  Functions compile for the argument types on first use and
are cached on disk (``cache=True``), including inside your own cached or
``parallel=True`` functions.  To train several states in a ``prange`` loop,
pass them in a ``numba.typed.List`` (a tuple of states cannot enter a
parallel loop), and keep BLAS single-threaded
(``threadpoolctl.threadpool_limits(1)``).
"""

import math
from collections import namedtuple

import numpy as np
from numba import errors, njit, types
from numba.extending import overload

from ._config import JIT
from ._kernels.forward import block, forward
from ._kernels.input_grad import input_grad, jacobian as _jacobian
from ._kernels.runtime import no_values, runtime
from ._kernels.sparse import SparseRows, csr_valid
from ._kernels.train import loss_grad, loss_sum, train_batch
from ._kernels.update import H_LR
from ._kernels.weights import given, or_none, weight_total
from .spec import CROSS_ENTROPY, L_IN, L_OUT, POISSON

NetState = namedtuple("NetState", [
    "model",      # fastbp._kernels.state.Model: params (shared with the MLP), layout, ...
    "work",       # fastbp._kernels.state.Work: this state's own workspace
    "loss",       # int: loss code
    "opt",        # int: optimizer code
    "hyper",      # float64: optimizer hyper-parameters (shared with the Optimizer)
    "opt_state",  # optimizer buffers shaped like params (shared)
    "step",       # int64 (1,): optimizer steps taken (shared)
    "xbuf", "ybuf",  # one-sample staging rows
    "rows",       # int64 (cap,): 0, 1, 2, ... -- the row list of a sparse batch
])


def make_state(net, batch_size, optimizer):
    """Build a :class:`NetState` for ``net`` (see :meth:`fastbp.MLP.state`)."""
    from .workspace import Workspace
    ws = Workspace(net._layout, net.n_params, net.dtype, batch_size)
    return NetState(net._model, ws.work, int(net._loss_code), int(optimizer.code),
                    optimizer.hyper, optimizer.state, optimizer.step,
                    np.zeros((1, net.sizes[0]), net.dtype),
                    np.zeros((1, net.sizes[-1]), net.dtype),
                    np.arange(ws.cap, dtype=np.int64))


def _same_dtype(state, X):
    """Compile-time check that ``X`` has the network's dtype."""


@overload(_same_dtype, jit_options=JIT)
def _same_dtype_impl(state, X):
    want = state[0][0].dtype  # state.model.params
    got = getattr(X, "dtype", None)
    if got != want:
        raise errors.TypingError(
            f"fastbp.jit: the network is {want} but an input array is {got}; pass arrays of "
            f"the network's dtype (convert once, outside the loop: x.astype(np.{want}))")
    return lambda state, X: None


@njit(**JIT)
def _check_X(state, X):
    """Raise unless X is a non-empty (n, n_in) array of the state's dtype."""
    _same_dtype(state, X)
    if X.ndim != 2 or X.shape[1] != state.model.layout[0, L_IN]:
        raise ValueError("fastbp.jit: X must be 2-D with n_in columns (the network's input width)")
    if X.shape[0] == 0:
        raise ValueError("fastbp.jit: X has no rows")


def _targets_ok(y, loss, m):
    """Whether targets ``y`` suit a network with loss code ``loss`` and ``m`` outputs."""


@overload(_targets_ok, jit_options=JIT)
def _targets_ok_impl(y, loss, m):
    if not isinstance(y, types.Array):
        return None
    if y.ndim == 2:
        return lambda y, loss, m: y.shape[1] == m
    if y.ndim == 1 and isinstance(y.dtype, types.Integer):
        def labels(y, loss, m):
            if loss != CROSS_ENTROPY:  # values of a single output, as in the Python API
                return m == 1
            for i in range(y.shape[0]):
                if y[i] < 0 or y[i] >= m:
                    return False
            return True
        return labels
    if y.ndim == 1:
        return lambda y, loss, m: m == 1
    return None


@njit(**JIT)
def _check_y(state, X, y):
    """Raise unless y matches X's rows and the network's targets."""
    if y.shape[0] != X.shape[0]:
        raise ValueError("fastbp.jit: X and y have different numbers of rows")
    m = state.model.layout[state.model.layout.shape[0] - 1, L_OUT]
    if not _targets_ok(y, state.loss, m):
        raise ValueError("fastbp.jit: y must be (n, n_out) floats, (n,) integer labels in "
                         "[0, n_out) for a cross-entropy network, or (n,) floats for one output "
                         "(integers there are read as values)")
    if state.loss == POISSON and y.min() < 0:
        raise ValueError("fastbp.jit: the poisson loss needs targets y >= 0")


def _targets(y):
    """``y`` as the training kernels take it: 1-D float targets of a one-output network
    as a ``(n, 1)`` view, so they share the compiled kernels of 2-D targets."""


@overload(_targets, jit_options=JIT)
def _targets_impl(y):
    if (isinstance(y, types.Array) and y.ndim == 1 and isinstance(y.dtype, types.Float)
            and y.layout == "C"):
        return lambda y: y.reshape((y.shape[0], 1))
    return lambda y: y


@njit(**JIT)
def _check_weights(X, sw):
    """Raise ValueError unless ``sw`` is None or finite weights ``>= 0``, one per row of ``X``."""
    if sw is None:
        return
    if sw.ndim != 1 or sw.shape[0] != X.shape[0]:
        raise ValueError("fastbp.jit: sample weights must be 1-D with one entry per row of X")
    for i in range(sw.shape[0]):
        if not (math.isfinite(sw[i]) and sw[i] >= 0):
            raise ValueError("fastbp.jit: sample weights must be finite and >= 0")


@njit(**JIT)
def _check_batch(state, X, y, sw=None):
    """Raise unless (X, y[, sw]) is a valid batch within the state's capacity."""
    _check_X(state, X)
    _check_y(state, X, y)
    _check_weights(X, sw)
    if X.shape[0] > state.work.cap:
        raise ValueError("fastbp.jit: batch larger than the state's capacity; "
                         "create the state with a larger batch_size")


@njit(**JIT)
def predict(state, X, out):
    """``out <- network(X)`` for ``X`` of shape ``(n, n_in)``, ``out`` ``(n, n_out)``."""
    _check_X(state, X)
    L = state.model.layout.shape[0]
    m = state.model.layout[L - 1, L_OUT]
    n = X.shape[0]
    if out.ndim != 2 or out.shape[0] != n or out.shape[1] != m:
        raise ValueError("fastbp.jit: out must have shape (n, n_out)")
    for s in range(0, n, state.work.cap):
        e = min(s + state.work.cap, n)
        off = forward(state.model, state.work, X[s:e], runtime(False), runtime(False))
        A = block(state.work.acts, off, e - s, m)
        for i in range(e - s):
            for k in range(m):
                out[s + i, k] = A[i, k]


@njit(**JIT)
def predict_one(state, x, out):
    """``out <- network(x)`` for one sample ``x`` of shape ``(n_in,)``."""
    if x.ndim != 1 or x.shape[0] != state.model.layout[0, L_IN]:
        raise ValueError("fastbp.jit: x must be 1-D with n_in entries")
    L = state.model.layout.shape[0]
    m = state.model.layout[L - 1, L_OUT]
    if out.shape[0] != m:
        raise ValueError("fastbp.jit: out must have n_out entries")
    for j in range(x.shape[0]):
        state.xbuf[0, j] = x[j]
    off = forward(state.model, state.work, state.xbuf, runtime(False),
                  runtime(False))
    for k in range(m):
        out[k] = state.work.acts[off + k]


@njit(**JIT)
def loss(state, X, y, sw=None):
    """Batch-mean loss of ``(X, y)``, weighted by ``sw`` if given."""
    _check_X(state, X)
    _check_y(state, X, y)
    _check_weights(X, sw)
    w = or_none(sw)
    yt = _targets(y)
    n = X.shape[0]
    wsum = weight_total(w, n)
    if wsum == 0.0:
        return 0.0
    total = 0.0
    for s in range(0, n, state.work.cap):
        e = min(s + state.work.cap, n)
        total += loss_sum(state.model, state.work, state.loss, X[s:e], yt[s:e], runtime(False),
                          w[s:e] if given(w) else w)
    return total / wsum


@njit(**JIT)
def gradient(state, X, y, sw=None):
    """Batch-mean (``sw``: weighted-mean) loss; ``state.work.grad`` receives its
    gradient (``n <= cap`` rows)."""
    _check_batch(state, X, y, sw)
    return loss_grad(state.model, state.work, state.loss, X, _targets(y), runtime(False),
                     or_none(sw))


@njit(**JIT)
def train_step(state, X, y, sw=None):
    """One optimizer step on ``(X, y)`` (``n <= cap`` rows, optional weights ``sw``);
    returns the (weighted) batch-mean loss before it."""
    _check_batch(state, X, y, sw)
    w = or_none(sw)
    wsum = weight_total(w, X.shape[0])
    if wsum == 0.0:
        return 0.0
    total = train_batch(state.model, state.work, state.loss, X, _targets(y), state.opt,
                        state.hyper, state.opt_state, state.step, w)
    return total / wsum


@njit(**JIT)
def set_lr(state, lr):
    """Set the learning rate of the state's optimizer (finite, ``>= 0``) for the next steps."""
    if not (math.isfinite(lr) and lr >= 0):
        raise ValueError("fastbp.jit.set_lr: the learning rate must be finite and >= 0")
    state.hyper[H_LR] = lr


@njit(**JIT)
def get_lr(state):
    """The learning rate of the state's optimizer."""
    return state.hyper[H_LR]


@njit(**JIT)
def train_step_one(state, x, y):
    """One optimizer step on one sample ``x`` (n_in,) with targets ``y`` (n_out,)."""
    L = state.model.layout.shape[0]
    m = state.model.layout[L - 1, L_OUT]
    if x.ndim != 1 or x.shape[0] != state.model.layout[0, L_IN]:
        raise ValueError("fastbp.jit: x must be 1-D with n_in entries")
    if y.ndim != 1 or y.shape[0] != m:
        raise ValueError("fastbp.jit: y must be 1-D with n_out entries")
    for j in range(x.shape[0]):
        state.xbuf[0, j] = x[j]
    for k in range(m):
        state.ybuf[0, k] = y[k]
    return train_batch(state.model, state.work, state.loss, state.xbuf, state.ybuf,
                       state.opt, state.hyper, state.opt_state, state.step, no_values())


@njit(**JIT)
def input_gradient(state, X, y, out):
    """Batch-mean loss of ``(X, y)``; ``out`` (n, n_in) <- its gradient with respect to ``X``.

    Inference mode, any number of rows (processed ``cap`` at a time);
    ``state.work.grad`` is left alone.
    """
    _check_X(state, X)
    _check_y(state, X, y)
    _same_dtype(state, out)
    n = X.shape[0]
    if out.ndim != 2 or out.shape[0] != n or out.shape[1] != X.shape[1]:
        raise ValueError("fastbp.jit: out must have the shape of X")
    total = 0.0
    yt = _targets(y)
    for s in range(0, n, state.work.cap):
        e = min(s + state.work.cap, n)
        total += input_grad(state.model, state.work, state.loss, X[s:e], yt[s:e], 1.0 / n,
                            out[s:e])
    return total / n


@njit(**JIT)
def jacobian(state, X, out):
    """``out[i, k, j] <- d output_k / d X[i, j]``; ``out`` is (n, n_out, n_in) (inference mode)."""
    _check_X(state, X)
    _same_dtype(state, out)
    L = state.model.layout.shape[0]
    n = X.shape[0]
    if (out.ndim != 3 or out.shape[0] != n or out.shape[1] != state.model.layout[L - 1, L_OUT]
            or out.shape[2] != X.shape[1]):
        raise ValueError("fastbp.jit: out must have shape (n, n_out, n_in)")
    for s in range(0, n, state.work.cap):
        e = min(s + state.work.cap, n)
        _jacobian(state.model, state.work, X[s:e], out[s:e])


@njit(**JIT)
def jacobian_one(state, x, out):
    """``out[k, j] <- d output_k / d x[j]`` for one sample ``x`` (n_in,); ``out`` (n_out, n_in)."""
    L = state.model.layout.shape[0]
    if x.ndim != 1 or x.shape[0] != state.model.layout[0, L_IN]:
        raise ValueError("fastbp.jit: x must be 1-D with n_in entries")
    if out.ndim != 2 or out.shape[0] != state.model.layout[L - 1, L_OUT] or out.shape[1] != x.shape[0]:
        raise ValueError("fastbp.jit: out must have shape (n_out, n_in)")
    _same_dtype(state, out)
    for j in range(x.shape[0]):
        state.xbuf[0, j] = x[j]
    _jacobian(state.model, state.work, state.xbuf, out[None, :, :])


def _int_indices(a):
    """Compile-time check that CSR index arrays hold integers."""


@overload(_int_indices, jit_options=JIT)
def _int_indices_impl(a):
    if not (isinstance(a, types.Array) and a.ndim == 1 and isinstance(a.dtype, types.Integer)):
        raise errors.TypingError(f"fastbp.jit: CSR indices and indptr must be 1-D integer "
                                 f"arrays, got {a}")
    return lambda a: None


@njit(**JIT)
def _check_csr(state, data, indices, indptr):
    """Validate CSR arrays of ``X``; return its number of rows."""
    _same_dtype(state, data)
    _int_indices(indices)
    _int_indices(indptr)
    n = indptr.shape[0] - 1
    if n < 1:
        raise ValueError("fastbp.jit: X has no rows (indptr needs n_rows + 1 entries)")
    if data.shape[0] != indices.shape[0] or not csr_valid(indptr, indices, n,
                                                          state.model.layout[0, L_IN]):
        raise ValueError("fastbp.jit: data, indices, indptr are not a CSR matrix with n_in "
                         "columns (indptr must rise from 0 to len(data), indices lie in "
                         "[0, n_in))")
    return n


@njit(**JIT)
def _csr_rows(state, data, indices, indptr, s, e):
    """``SparseRows`` of CSR rows ``s:e`` (``e - s <= cap``)."""
    return SparseRows(data, indices, indptr[s:e + 1], state.rows[:e - s],
                      (e - s, state.model.layout[0, L_IN]), state.xbuf[0, :0])


@njit(**JIT)
def sparse_predict(state, data, indices, indptr, out):
    """``out <- network(X)`` for CSR ``X`` (``data``, ``indices``, ``indptr``)."""
    n = _check_csr(state, data, indices, indptr)
    L = state.model.layout.shape[0]
    m = state.model.layout[L - 1, L_OUT]
    if out.ndim != 2 or out.shape[0] != n or out.shape[1] != m:
        raise ValueError("fastbp.jit: out must have shape (n, n_out)")
    for s in range(0, n, state.work.cap):
        e = min(s + state.work.cap, n)
        off = forward(state.model, state.work, _csr_rows(state, data, indices, indptr, s, e),
                      runtime(False), runtime(False))
        A = block(state.work.acts, off, e - s, m)
        for i in range(e - s):
            for k in range(m):
                out[s + i, k] = A[i, k]


@njit(**JIT)
def sparse_loss(state, data, indices, indptr, y):
    """Batch-mean loss of CSR ``X`` and ``y``."""
    n = _check_csr(state, data, indices, indptr)
    if y.shape[0] != n:
        raise ValueError("fastbp.jit: X and y have different numbers of rows")
    _check_y(state, y, y)  # rows matched above: the width and label range
    total = 0.0
    yt = _targets(y)
    for s in range(0, n, state.work.cap):
        e = min(s + state.work.cap, n)
        total += loss_sum(state.model, state.work, state.loss,
                          _csr_rows(state, data, indices, indptr, s, e), yt[s:e], runtime(False),
                          no_values())
    return total / n


@njit(**JIT)
def _sparse_batch(state, data, indices, indptr, y):
    """Checked ``SparseRows`` of a whole batch (``n <= cap`` rows)."""
    n = _check_csr(state, data, indices, indptr)
    if n > state.work.cap:
        raise ValueError("fastbp.jit: batch larger than the state's capacity; "
                         "create the state with a larger batch_size")
    X = _csr_rows(state, data, indices, indptr, 0, n)
    _check_y(state, X, y)
    return X


@njit(**JIT)
def sparse_gradient(state, data, indices, indptr, y):
    """Batch-mean loss of CSR ``X``; ``state.work.grad`` receives its gradient (``n <= cap``)."""
    X = _sparse_batch(state, data, indices, indptr, y)
    return loss_grad(state.model, state.work, state.loss, X, _targets(y), runtime(False),
                     no_values())


@njit(**JIT)
def sparse_train_step(state, data, indices, indptr, y):
    """One optimizer step on CSR ``X`` and ``y`` (``n <= cap`` rows); returns the prior loss."""
    X = _sparse_batch(state, data, indices, indptr, y)
    total = train_batch(state.model, state.work, state.loss, X, _targets(y), state.opt,
                        state.hyper, state.opt_state, state.step, no_values())
    return total / X.shape[0]


__all__ = ["NetState", "predict", "predict_one", "loss", "gradient", "train_step",
           "train_step_one", "set_lr", "get_lr", "input_gradient", "jacobian", "jacobian_one",
           "sparse_predict", "sparse_loss", "sparse_gradient", "sparse_train_step"]
