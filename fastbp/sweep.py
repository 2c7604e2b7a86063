"""Many independent trainings -- grids, seeds, ensembles -- on a Dask cluster.

:func:`run_sweep` sends one task per configuration to a ``dask.distributed``
client (a 2-worker-per-2-cores :class:`~distributed.LocalCluster` that it
creates and closes when none is given, or any cluster you connect), or to any
:class:`concurrent.futures.Executor` such as
``mpi4py.futures.MPIPoolExecutor`` inside an MPI job.  Each task builds its
network, limits Numba and BLAS threads, trains, and returns the history, the
parameters and the trained network (and saves it to ``save_dir`` if given).

dask is imported lazily: importing this module does not need it.
"""

import inspect
import itertools
import os
import socket
import time

import numpy as np

__all__ = ["run_sweep", "train_config", "expand_grid", "NetFactory"]


def _mlp():
    from .network import MLP
    return MLP


def _names(fn, skip=("self",)):
    return [p.name for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in skip]


def _fit_keys():
    """Configuration keys that go to ``MLP.fit``: its parameters and the optimizers'."""
    from . import optim
    keys = set(_names(_mlp().fit, ("self", "X", "y")))
    for cls in vars(optim).values():
        if isinstance(cls, type) and issubclass(cls, optim.Optimizer):
            keys.update(_names(cls.__init__))
    return keys


def expand_grid(param_grid):
    """A list of configuration dicts from a grid or a list of configurations.

    A dict of lists expands to the Cartesian product (keys in the dict's order,
    the last key varying fastest); a dict of scalars is one configuration; a
    list or tuple of dicts is returned as a list of copies.
    """
    if isinstance(param_grid, dict):
        keys = list(param_grid)
        values = [v if isinstance(v, (list, tuple, range, np.ndarray)) else [v]
                  for v in param_grid.values()]
        return [dict(zip(keys, combo)) for combo in itertools.product(*values)]
    if isinstance(param_grid, (list, tuple)) and all(isinstance(c, dict) for c in param_grid):
        return [dict(c) for c in param_grid]
    raise TypeError("param_grid must be a dict (of lists) or a list of dicts, got "
                    f"{type(param_grid).__name__}")


class NetFactory:
    """Picklable ``make_net``: ``MLP(sizes, **kwargs)`` overridden by config keys.

    Configuration keys that are :class:`~fastbp.MLP` constructor parameters
    (``seed``, ``activation``, ``dropout``, ``sizes``, ...) override the
    defaults given here; keys of ``MLP.fit`` and the optimizers are left to
    ``fit``; any other key is a TypeError (a typo, most likely).
    """

    def __init__(self, sizes, **kwargs):
        self.sizes = list(sizes)
        self.kwargs = kwargs

    def __call__(self, config):
        MLP = _mlp()
        allowed = set(_names(MLP.__init__))
        unknown = sorted(set(config) - allowed - _fit_keys())
        if unknown:
            raise TypeError(f"configuration keys {unknown} are parameters of neither MLP nor "
                            "MLP.fit nor an optimizer; pass your own make_net to use them")
        kw = dict(self.kwargs, sizes=self.sizes)
        kw.update({k: v for k, v in config.items() if k in allowed})
        return MLP(**kw)

    def __repr__(self):
        return f"NetFactory({self.sizes}, **{self.kwargs})"


def _history_dict(hist):
    out = {}
    for k, v in vars(hist).items():
        out[k] = [list(x) if isinstance(x, (list, tuple)) else x for x in v] \
            if isinstance(v, list) else v
    return out


def _save(net, path):
    try:
        from .io import save
    except ImportError:  # pragma: no cover - only without fastbp.io
        save = None
    if save is not None:
        save(net, path)
    else:  # pragma: no cover
        with open(path, "wb") as fh:
            np.savez(fh, params=net.params)


def train_config(make_net, config, X, y, fit_kwargs=None, threads=1, save_path=None,
                 index=None, return_model=True):
    """Build, train and summarise one network; the task :func:`run_sweep` runs.

    Parameters
    ----------
    make_net : callable
        ``make_net(config) -> MLP`` (e.g. a :class:`NetFactory`).
    config : dict
        Keys that are parameters of ``MLP.fit`` or of an optimizer (``lr``,
        ``epochs``, ``batch_size``, ``optimizer``, ``seed``, ``momentum``, ...)
        override ``fit_kwargs``; ``make_net`` sees every key.
    X, y : arrays
    fit_kwargs : dict, optional
        Keyword arguments of ``MLP.fit`` shared by every configuration.
    threads : int
        Numba and BLAS threads for this training (restored afterwards).
    save_path : str, optional
        Save the trained network there (``fastbp.io.save``).
    return_model : bool
        Include the trained network itself (it pickles back from a worker
        with its optimizer, history and batch-norm statistics).

    Returns
    -------
    dict
        ``index``, ``config``, ``history`` (the History's fields as a dict),
        ``params`` (ndarray), ``net`` (the trained MLP, with
        ``return_model``), ``path``, ``time`` (seconds), ``worker``
        (``host:pid``) and ``threads``.
    """
    import numba
    from threadpoolctl import threadpool_limits
    kwargs = dict(fit_kwargs or {})
    keys = _fit_keys()
    kwargs.update({k: v for k, v in config.items() if k in keys})
    old = numba.get_num_threads()
    t0 = time.perf_counter()
    try:
        numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
        with threadpool_limits(limits=int(threads)):
            net = make_net(config)
            hist = net.fit(X, y, **kwargs)
    finally:
        numba.set_num_threads(old)
    dt = time.perf_counter() - t0
    if save_path is not None:
        _save(net, save_path)
    out = {
        "index": index, "config": dict(config), "history": _history_dict(hist),
        "params": net.params.copy(),
        "path": None if save_path is None else os.fspath(save_path),
        "time": dt, "worker": f"{socket.gethostname()}:{os.getpid()}", "threads": int(threads),
    }
    if return_model:
        out["net"] = net
    return out


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def _is_dask(client):
    return hasattr(client, "scatter") and hasattr(client, "gather")


def run_sweep(make_net, param_grid, X, y, client=None, threads_per_worker=1, n_workers=None,
              fit_kwargs=None, save_dir=None, return_models=True, **more_fit_kwargs):
    """Train one network per configuration, in parallel, and collect the results.

    Parameters
    ----------
    make_net : callable or dict
        ``make_net(config) -> MLP``; it must be picklable (a module-level
        function or a :class:`NetFactory`; cloudpickle also ships lambdas).
        A dict is shorthand for ``NetFactory(**make_net)``.
    param_grid : dict or list of dict
        See :func:`expand_grid`; e.g. ``{"lr": [0.1, 0.01], "seed": [0, 1]}``
        (4 runs), or ``[{"seed": s} for s in range(10)]`` (an ensemble).
    X, y : arrays
        Training data, scattered once to every worker.
    client : dask.distributed.Client or concurrent.futures.Executor, optional
        Default: a ``LocalCluster(n_workers, threads_per_worker=1,
        processes=True)`` created for this call and closed afterwards.
    threads_per_worker : int
        Numba and BLAS threads each training uses.
    n_workers : int, optional
        Workers of the default LocalCluster: cores // threads_per_worker.
    fit_kwargs, **more_fit_kwargs
        ``MLP.fit`` keywords shared by every configuration (``epochs``,
        ``batch_size``, ``validation_data``, ...).
    save_dir : str, optional
        Each task saves its network as ``save_dir/run_<index>.npz``
        (``fastbp.io``; load with ``fastbp.io.load``).
    return_models : bool
        Send each trained network back (``"net"``: the MLP with its optimizer,
        history and batch-norm statistics); False sends parameters only.

    Returns
    -------
    list of dict
        One per configuration, in order: see :func:`train_config`.
    """
    if isinstance(make_net, dict):
        make_net = NetFactory(**make_net)
    configs = expand_grid(param_grid)
    threads = max(1, int(threads_per_worker))
    kwargs = dict(fit_kwargs or {}, **more_fit_kwargs)
    if save_dir is not None:
        os.makedirs(save_dir, exist_ok=True)
    paths = [None if save_dir is None else os.path.join(os.fspath(save_dir), f"run_{i:03d}.npz")
             for i in range(len(configs))]
    own = []
    try:
        if client is None:
            from dask.distributed import Client, LocalCluster
            nw = n_workers or max(1, _cores() // threads)
            env = {v: str(threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                             "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
            cluster = LocalCluster(n_workers=nw, threads_per_worker=1, processes=True,
                                   dashboard_address=None, env=env)
            own.append(cluster)
            client = Client(cluster)
            own.append(client)
        if _is_dask(client):
            Xf, yf = client.scatter([X, y], broadcast=True, hash=False)
            vd = kwargs.pop("validation_data", None)
            if vd is not None:
                vd = tuple(client.scatter(list(vd), broadcast=True, hash=False))
                kwargs["validation_data"] = vd
            futures = [client.submit(train_config, make_net, c, Xf, yf, kwargs, threads, p, i,
                                     bool(return_models), pure=False,
                                     key=f"fastbp-sweep-{i}-{os.urandom(4).hex()}")
                       for i, (c, p) in enumerate(zip(configs, paths))]
            results = client.gather(futures)
        else:  # a concurrent.futures.Executor (MPIPoolExecutor, ProcessPoolExecutor, ...)
            futures = [client.submit(train_config, make_net, c, X, y, kwargs, threads, p, i,
                                     bool(return_models))
                       for i, (c, p) in enumerate(zip(configs, paths))]
            results = [f.result() for f in futures]
    finally:
        for obj in reversed(own):
            obj.close()
    return results
