"""Train K independent networks of one architecture at once.

For ensembles, hyper-parameter sweeps (a learning rate per network) and
neuro-evolution: all K parameter vectors live in one ``(K, n_params)`` buffer
and one parallel kernel trains them, each network with its own data order.

Dense networks (no dropout, no batch norm) with mse or a cross-entropy
train on the lane kernel (``_kernels/lanes.py``), vectorised across
networks; the others (huber, mae, quantile and poisson included) on the
per-network kernel (``_kernels/population.py``).  Both shuffle with the same
keyed permutations, so they train a network identically up to rounding.
"""

from collections import namedtuple

import numba
import numpy as np
from threadpoolctl import threadpool_limits

from ._config import GROUP, LANES
from ._engine import Case, choose
from ._kernels.lanes import N_LANE_SCALARS, lanes_epoch, lanes_predict
from ._kernels.rng import permutations
from ._kernels.population import (population_batch_epoch, population_flat_epoch,
                                  population_predict)
from ._validate import check_int, check_X, check_y
from .network import MLP
from .optim import HYPER_SLOTS, N_HYPER, make_optimizer
from .spec import L_BN, total_width
from .threads import run_chunks
from .workspace import aligned_zeros, work_buffers


#: The lane kernel's per-thread workspaces, in ``lanes_epoch``'s argument order.
LaneWork = namedtuple("LaneWork", ["PB", "GB", "SB", "HB", "A", "Z", "D", "TG", "S", "lv",
                                   "lf", "ordT", "stepv", "offs"])


class Population:
    """K networks of one architecture trained in one parallel kernel.

    Parameters
    ----------
    sizes, activation, output, loss, init, dtype, **mlp_kwargs
        As for :class:`fastbp.MLP` (dropout, batch_norm, ... included).
    k : int
        Number of networks.
    seed : int or None
        Each network is initialised from its own stream of
        ``numpy.random.SeedSequence(seed).spawn(k)``.

    Attributes
    ----------
    params : ndarray, shape (k, n_params)
        Row ``i`` is network ``i``'s flat parameter buffer (MLP layout).
    """

    def __init__(self, sizes, k, activation="relu", output=None, loss="mse", init="auto",
                 dtype="float64", seed=None, **mlp_kwargs):
        self.k = check_int(k, "k", 1)
        self._kw = dict(activation=activation, output=output, loss=loss, init=init,
                        dtype=dtype, **mlp_kwargs)
        seqs = np.random.SeedSequence(seed).spawn(self.k)
        nets = [MLP(sizes, seed=s, **self._kw) for s in seqs]
        self.template = nets[0]
        self.params = np.stack([net.params for net in nets])
        self.stats = np.stack([net._stats for net in nets])
        self.counters = np.zeros((self.k, 1), dtype=np.int64)
        self.seeds = np.array([net._dropout_seed for net in nets], dtype=np.int64)
        self.rng = np.random.default_rng(seqs[0].spawn(1)[0])
        self._bufs = {}

    @property
    def dtype(self):
        """Parameter dtype."""
        return self.template.dtype

    def network(self, i):
        """Network ``i`` as an :class:`MLP` whose params are a view of row ``i``."""
        i = check_int(i, "i", -self.k)
        if i >= self.k:
            raise IndexError(f"network index {i} out of range for {self.k} networks")
        net = self.template.copy()
        net._params = self.params[i]
        net._stats = self.stats[i]
        net._counter = self.counters[i]
        net._dropout_seed = int(self.seeds[i])
        net._make_views()
        return net

    def _data(self, X, y=None):
        """``X`` as ``(1 or k, n, n_in)`` and ``y`` as ``(1 or k, n[, n_out])``, validated."""
        t = self.template
        X = np.asarray(X) if not isinstance(X, np.ndarray) else X
        if X.ndim not in (2, 3):
            raise ValueError(f"X must be (n, n_in) data shared by all networks or "
                             f"(k, n, n_in) one data set per network, got shape {X.shape}")
        per_net = X.ndim == 3
        if per_net and X.shape[0] != self.k:
            raise ValueError(f"X has {X.shape[0]} data sets but the population has {self.k} "
                             "networks; pass (n, n_in) shared data or (k, n, n_in)")
        sets = X.shape[0] if per_net else 1
        # one check over all k data sets at once (a view when X is already right)
        X2 = check_X(X.reshape(-1, X.shape[2]) if per_net else X, t.sizes[0], t.dtype)
        n = X2.shape[0] // sets if per_net else X2.shape[0]
        X3 = X2.reshape(sets, n, t.sizes[0])
        if y is None:
            return X3, None
        y = np.asarray(y) if not isinstance(y, np.ndarray) else y
        if per_net:
            if y.ndim == 0 or y.shape[0] != self.k:
                got = y.shape[0] if y.ndim else "no"
                raise ValueError(f"y has {got} target sets but X has {self.k}")
            if y.ndim > 1 and y.shape[1] != n:
                raise ValueError(f"X has {n} samples per network but y has {y.shape[1]}; "
                                 "they must match")
            y2 = check_y(y.reshape((sets * n,) + y.shape[2:]) if y.ndim > 1 else y,
                         sets * n, t.sizes[-1], t._loss_code, t.dtype)
        else:
            y2 = check_y(y, n, t.sizes[-1], t._loss_code, t.dtype)
        return X3, y2.reshape((sets, n) + y2.shape[1:])

    def _buffers(self, cap, y_like):
        t = self.template
        chunks = min(numba.get_num_threads(), self.k)
        key = (chunks, cap, y_like.dtype.str, y_like.shape[2:])
        if key not in self._bufs:
            work = work_buffers(t._layout, t.dtype, cap,
                                aligned_zeros((chunks, t.n_params), t.dtype), lead=(chunks,))
            self._bufs[key] = (aligned_zeros((chunks, cap, t.sizes[0]), t.dtype),
                               np.zeros((chunks, cap) + y_like.shape[2:], dtype=y_like.dtype),
                               *work[:-1])  # Work without ``cap``, in the kernels' order
        return self._bufs[key]

    def _model_arrays(self):
        t = self.template
        return (self.params, t._layout, t._lparams, self.stats, self.counters, self.seeds)

    def fit(self, X, y, epochs=1, batch_size=32, lr=0.01, shuffle=True, optimizer="sgd",
            **opt_kwargs):
        """Train every network; returns the mean training loss, shape ``(epochs, k)``.

        A network whose loss becomes non-finite stops where it diverged and
        reports NaN for that epoch; the others are unaffected.

        Parameters
        ----------
        X : array-like, shape (n, n_in) shared by all, or (k, n, n_in)
        y : array-like, targets for ``X`` (shared or one set per network)
        lr : float or array-like of shape (k,)
            One learning rate for all, or one per network (a sweep).
        shuffle : bool
            Each epoch, each network walks its data in its own random order
            (drawn from the population's seed).
        optimizer : {"sgd", "adam", "adamw", "rprop"}
            With its keywords (momentum, nesterov, weight_decay, betas, eps,
            l1, clip_norm, ...); each network gets its own state.
        """
        if "sample_weight" in opt_kwargs:
            raise TypeError("Population.fit does not support sample_weight; train weighted "
                            "networks one by one with MLP.fit(..., sample_weight=w)")
        X3, Y3 = self._data(X, y)
        shuffle = bool(shuffle)
        epochs = check_int(epochs, "epochs", 0)
        batch_size = check_int(batch_size, "batch_size", 1)
        lr_arr = np.asarray(lr, dtype=np.float64)
        if lr_arr.ndim > 1 or (lr_arr.ndim == 1 and lr_arr.shape[0] != self.k):
            raise ValueError(f"lr must be one number or one per network (shape ({self.k},)), "
                             f"got shape {lr_arr.shape}")
        lrs = np.broadcast_to(lr_arr, (self.k,))
        proto = make_optimizer(optimizer, float(lrs[0]), **opt_kwargs)
        proto.bind(self.template.n_params, self.dtype)
        for v in np.unique(lrs):
            proto.lr = float(v)  # validates each rate
        hyper = np.tile(proto.hyper, (self.k, 1))
        hyper[:, HYPER_SLOTS["lr"]] = lrs
        state = np.tile(proto.state, (self.k, 1, 1))
        step = np.zeros((self.k, 1), dtype=np.int64)
        n = X3.shape[1]
        if proto.full_batch:
            batch_size = n
        out = np.zeros((self.k, 2))
        losses = np.zeros((epochs, self.k))
        t = self.template
        engine = choose("population", Case(t._loss_code, proto.code, proto.hyper, t._layout,
                                           t._lparams, batch_size, False, False))
        if engine == "lanes":
            bufs = self._lane_buffers(n if shuffle else 0, state.shape[1])
            for e in range(epochs):
                seed = int(self.rng.integers(2**63))
                run_chunks(lanes_epoch, bufs.PB.shape[0], self.params, t._layout,
                           t._lparams, self.counters, t._loss_code, X3, Y3, batch_size, shuffle,
                           seed, proto.code, hyper, state, step, out, *bufs)
                losses[e] = np.where(out[:, 1] == n, out[:, 0], np.nan)
            return losses
        cap = min(batch_size, n)
        bufs = self._buffers(cap, Y3)
        orders = np.tile(np.arange(n, dtype=np.int64), (self.k, 1))
        with threadpool_limits(1):
            for e in range(epochs):
                if shuffle:
                    permutations(orders, int(self.rng.integers(2**63)))
                if engine == "population-small":  # compiles only the path it takes
                    run_chunks(population_flat_epoch, bufs[2].shape[0], *self._model_arrays(),
                               t._loss_code, X3, Y3, orders, batch_size, shuffle, bufs[0],
                               *bufs[2:], hyper, step, out)
                else:
                    run_chunks(population_batch_epoch, bufs[2].shape[0],
                               *self._model_arrays(), t._loss_code, X3, Y3, orders, batch_size,
                               shuffle, *bufs, proto.code, hyper, state, step, out)
                losses[e] = np.where(out[:, 1] == n, out[:, 0], np.nan)
        return losses

    def _lane_buffers(self, n_order, n_state):
        """Per-thread workspaces of the lane kernel, reused while they are big enough.

        ``n_order``: samples per network to shuffle (0: none); ``n_state``:
        optimizer state buffers per parameter.
        """
        t = self.template
        chunks = max(1, min(numba.get_num_threads(), -(-self.k // LANES)))
        have = self._bufs.get("lanes")
        if have is not None:
            c, orders, states, bufs = have
            if c == chunks and orders >= n_order and states >= n_state:
                return bufs
            n_order, n_state = max(orders, n_order), max(states, n_state)
        P = t.n_params
        rows = t.sizes[0] + total_width(t._layout)
        z = lambda *s, dt=t.dtype: aligned_zeros((chunks,) + s + (LANES,), dt)  # noqa: E731
        bufs = LaneWork(
            z(P), z(P), z(max(n_state, 1), P), z(N_HYPER, dt=np.float64),
            z(GROUP * rows), z(GROUP * rows), z(GROUP * rows), z(GROUP * t.sizes[-1]),
            z(5), z(N_LANE_SCALARS, dt=np.float64), z(2, dt=np.bool_),
            z(max(n_order, 1), dt=np.int64), aligned_zeros((chunks, LANES), np.int64),
            z(2, dt=np.uint64))
        self._bufs["lanes"] = (chunks, n_order, n_state, bufs)
        return bufs

    def predict(self, X):
        """Outputs of every network, shape ``(k, n, n_out)``.

        Parameters
        ----------
        X : array-like, shape (n, n_in) shared by all, or (k, n, n_in)
        """
        X3, _ = self._data(X)
        t = self.template
        n = X3.shape[1]
        out = np.empty((self.k, n, t.sizes[-1]), dtype=t.dtype)
        if (t._layout[:, L_BN] < 0).all():  # no batch norm: the lane kernel
            w = self._lane_buffers(0, 0)
            run_chunks(lanes_predict, w.PB.shape[0], self.params, t._layout,
                       t._lparams, X3, w.PB, w.A, w.Z, w.S, out)
            return out
        cap = min(n, 1024)
        bufs = self._buffers(cap, np.zeros((1, 1, t.sizes[-1]), t.dtype))
        with threadpool_limits(1):
            run_chunks(population_predict, bufs[2].shape[0], *self._model_arrays(), X3,
                       *bufs[2:], cap, out)
        return out
