"""Saving and loading networks: a versioned ``.npz`` format that never pickles.

File format (``FORMAT_NAME = "fastbp-mlp"``, ``FORMAT_VERSION = 1``)
====================================================================

A file is a ZIP archive written by :func:`numpy.savez` (members stored
uncompressed, one ``.npy`` file per array), read back with
``numpy.load(..., allow_pickle=False)``.  No member may have an object dtype,
so loading never unpickles and never executes anything from the file.

Members (array name, dtype, shape):

==========================  ===========  =========================================
``meta``                    ``uint8``    ``(n_bytes,)``: UTF-8 JSON object, below
``params``                  net dtype    ``(n_params,)``: :attr:`MLP.params`
                                         (weights, biases, batch-norm gamma/beta)
``stats``                   net dtype    ``(n_stats,)``: batch-norm running
                                         mean/variance (``n_stats`` may be 0)
``optimizer.hyper``         ``float64``  ``(N_HYPER,)``: ``Optimizer.hyper``
``optimizer.state``         net dtype    ``(max(n_state, 1), n_params or 0)``
                                         (only when the optimizer was bound)
``optimizer.step``          ``int64``    ``(1,)``: ``Optimizer.step``
``history.loss``            ``float64``  ``(n_epochs,)``
``history.lr``              ``float64``  ``(n_epochs,)``
``history.epoch_time``      ``float64``  ``(n_epochs,)``
``history.val_loss``        ``float64``  ``(n_val,)``
``history.val_score``       ``float64``  ``(n_val,)``: NaN stands for ``None``
``history.grad_norms``      ``float64``  ``(n_rows, n_layers)`` (``(0, 0)`` if none)
``extra.<name>``            bool/int/    any shape: the ``extra`` arrays given to
                            uint/float   :func:`save` (the extension point)
==========================  ===========  =========================================

The ``optimizer.*`` members exist only when ``net.optimizer`` was set, the
``history.*`` members only when ``net.history_`` exists.

``meta`` is a JSON object with exactly these keys::

    {
      "format": "fastbp-mlp",
      "version": 1,                        # integer, see the version policy
      "fastbp_version": "0.1.0",           # informational only
      "architecture": {
        "sizes": [4, 8, 3],                # positive ints, input first
        "activations": ["relu", "softmax"],  # canonical names, one per layer
        "loss": "cross_entropy",
        "dtype": "float64",                # or "float32"
        "leaky_slope": 0.01, "elu_alpha": 1.0,
        "init": "auto",
        "dropout": [0.0],                  # one rate per hidden layer
        "batch_norm": [false],             # one flag per hidden layer
        "bn_momentum": 0.1, "bn_eps": 1e-05,
        "huber_delta": 1.0,                # only when loss is "huber"
        "quantile": 0.5                    # only when loss is "quantile"
      },
      "counter": 0,                        # training steps taken (drives dropout masks)
      "dropout_seed": 123,                 # seed of the dropout masks
      "rng": {...},                        # net.rng.bit_generator.state; ndarray values
                                           # as {"__ndarray__": list, "dtype": name}
      "optimizer": null | {
        "class": "SGD" | "Adam" | "AdamW" | "RPROP",
        "attributes": {...},               # SGD: momentum, nesterov, weight_decay, l1,
                                           # clip_norm; Adam/AdamW: weight_decay, l1,
                                           # clip_norm; RPROP: delta0, weight_decay, l1,
                                           # clip_norm (clip_norm may be null)
        "bound": true                      # whether optimizer.state is present
      },
      "history": null | {"samples": int, "stop_reason": null | str,
                         "best_epoch": null | int},
      "extra": ["name", ...]               # names of the extra.<name> members
    }

The ``attributes`` are those entries of the optimizer's
:meth:`~fastbp.optim.Optimizer.get_config`; its other settings (betas, eps,
RPROP's eta/delta bounds, lr) are read back, by slot name, from
``optimizer.hyper`` (:func:`fastbp.optim.from_hyper`), and the rebuilt
optimizer's hyper-parameter array must come out bit for bit equal to the
stored one (so a file cannot describe an inconsistent optimizer).  Its state
goes through :meth:`~fastbp.optim.Optimizer.get_state` /
:meth:`~fastbp.optim.Optimizer.set_state`.

Floats in ``meta`` are written with Python's shortest round-trip repr, and
everything numeric that inference or training depends on (parameters,
batch-norm statistics, step counter and dropout seed, optimizer
hyper-parameters, state and step, the generator state) is restored exactly:
a loaded network predicts bit for bit like the saved one and training
continues exactly as it would have -- pass ``optimizer=net.optimizer`` to
:meth:`MLP.fit` to continue with the restored optimizer state.

Version policy
--------------
``version`` is bumped whenever the layout changes in a way an older reader
would misread.  :func:`load` reads every version up to :data:`FORMAT_VERSION`
and raises :class:`FormatError` for a newer one, asking for a newer fastbp.
Data that older readers may safely carry along goes into ``extra.<name>``
arrays, which every reader since version 1 accepts and returns untouched
(``load(path, return_extra=True)``).

Robustness
----------
:func:`save` writes through :func:`fastbp._npz.save_npz`: a temporary file in
the target's folder, fsynced, then atomically renamed over the target, so a
failure at any point leaves an existing file untouched and no temporary file
behind.  The exact path given is used (no ``.npz`` is appended); a symbolic
link at ``path`` is replaced by the file, not followed.  Temporaries left by
writers killed mid-save (``.<name>.<16 hex digits>.tmp``) are removed by the
next :func:`save` to, or :func:`load` from, the same path -- never a live
writer's (see :mod:`fastbp._npz`).

:func:`load` validates everything -- the ZIP structure and CRCs, member names,
dtypes, shapes and sizes (against the file's size, before anything is
allocated; :class:`fastbp._npz.NpzReader`), the JSON schema, names against
the allowed sets, finiteness -- and raises :class:`FormatError` (a :class:`ValueError`) for a truncated, corrupted,
crafted, wrong-format or newer-version file.  A missing file raises
:class:`FileNotFoundError`.
"""

import json
import math
import os
import re

import numpy as np

from . import optim, spec
from ._npz import NpzReader, remove_stale_temporaries, save_npz
from .history import History
from .errors import FormatError

__all__ = ["save", "load", "FormatError", "FORMAT_NAME", "FORMAT_VERSION"]

#: Value of ``meta["format"]``.
FORMAT_NAME = "fastbp-mlp"
#: Newest format version this module writes and reads.
FORMAT_VERSION = 1

_META_KEYS = {"format", "version", "fastbp_version", "architecture", "counter", "dropout_seed",
              "rng", "optimizer", "history", "extra"}
_ARCH_KEYS = {"sizes", "activations", "loss", "dtype", "leaky_slope", "elu_alpha", "init",
              "dropout", "batch_norm", "bn_momentum", "bn_eps"}
#: Architecture keys present only for the loss that uses them (so files of
#: networks with the other losses read the same as before they existed).
_LOSS_KEYS = {"huber": "huber_delta", "quantile": "quantile"}
_OPT_KEYS = {"class", "attributes", "bound"}
_HIST_KEYS = {"samples", "stop_reason", "best_epoch"}
_HIST_ARRAYS = ("loss", "lr", "epoch_time", "val_loss", "val_score", "grad_norms")
_COMMON = ("weight_decay", "l1", "clip_norm")
#: Format version 1 stores, for each optimizer class, these entries of its
#: ``get_config()`` as ``meta["optimizer"]["attributes"]``; the rest of its
#: settings are read back from the ``optimizer.hyper`` array (by slot name).
_ATTRIBUTES = {"SGD": ("momentum", "nesterov") + _COMMON, "Adam": _COMMON, "AdamW": _COMMON,
               "RPROP": ("delta0",) + _COMMON}
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
_EXTRA_NAME = re.compile(r"[A-Za-z0-9_]{1,64}\Z")
_EXTRA_KINDS = "biuf"
_MAX_META_BYTES = 1 << 24


def _fail(msg):
    raise FormatError(msg)


_NETWORK_CLASS = []  # [fastbp.MLP], declared by fastbp.network (which imports this module)


def network_format(cls):
    """Class decorator: ``cls`` is the network this format saves and :func:`load` builds.

    ``fastbp.network`` declares :class:`fastbp.MLP` so; this module never
    imports ``fastbp.network``, so imports run one way (network -> io).
    """
    _NETWORK_CLASS[:] = [cls]
    return cls


def _network_class():
    if not _NETWORK_CLASS:  # pragma: no cover - fastbp/__init__ imports fastbp.network
        raise RuntimeError("fastbp.network is not imported; import fastbp first")
    return _NETWORK_CLASS[0]


# ------------------------------------------------------------------ optimizer
def _optimizer_meta(opt):
    """``meta["optimizer"]`` for ``opt`` (checked to load back as an equal optimizer)."""
    name = type(opt).__name__
    if name not in _ATTRIBUTES or type(opt) not in optim.OPTIMIZERS.values():
        raise TypeError(f"cannot save an optimizer of type {type(opt).__qualname__}; "
                        f"supported: {', '.join(_ATTRIBUTES)}")
    try:  # never write a file that load() would reject
        config = opt.get_config()
        attrs = {key: config[key] for key in _ATTRIBUTES[name]}
        optim.from_hyper(name, opt.hyper, **attrs)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"cannot save {name}: {exc}") from None
    return {"class": name, "attributes": attrs, "bound": opt.state is not None}


# ------------------------------------------------------------------------ save
def _encode_state(value):
    """A bit-generator state as JSON-able data (ndarrays tagged with their dtype)."""
    if isinstance(value, dict):
        return {str(k): _encode_state(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": value.dtype.name}
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, str):
        return value
    raise TypeError(f"cannot store generator state value of type {type(value).__name__}")


def _collect(net, extra):
    """Every member to write, validated before anything touches the disk."""
    params = np.ascontiguousarray(net.params)
    stats = np.ascontiguousarray(net._stats)
    if not (np.all(np.isfinite(params)) and np.all(np.isfinite(stats))):
        raise ValueError("the network's params contain NaN or infinite values; not saving "
                         "a network that cannot be used")
    arrays = {"params": params, "stats": stats}
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "fastbp_version": _fastbp_version(),
        "architecture": {
            "sizes": [int(s) for s in net.sizes],
            "activations": list(net.activations),
            "loss": net.loss,
            "dtype": np.dtype(net.dtype).name,
            "leaky_slope": float(net.leaky_slope),
            "elu_alpha": float(net.elu_alpha),
            "init": net.init,
            "dropout": [float(p) for p in net.dropout],
            "batch_norm": [bool(b) for b in net.batch_norm],
            "bn_momentum": float(net.bn_momentum),
            "bn_eps": float(net.bn_eps),
        },
        "counter": int(net._counter[0]),
        "dropout_seed": int(net._dropout_seed),
        "rng": _encode_state(net.rng.bit_generator.state),
        "optimizer": None,
        "history": None,
        "extra": [],
    }
    key = _LOSS_KEYS.get(net.loss)
    if key is not None:
        meta["architecture"][key] = float(getattr(net, key))
    if meta["rng"].get("bit_generator") not in _BIT_GENERATORS:
        raise TypeError(f"cannot save a generator built on {meta['rng'].get('bit_generator')!r}; "
                        f"supported bit generators: {', '.join(_BIT_GENERATORS)}")
    opt = getattr(net, "optimizer", None)
    if opt is not None:
        meta["optimizer"] = _optimizer_meta(opt)
        arrays["optimizer.hyper"] = np.ascontiguousarray(opt.hyper, dtype=np.float64)
        for key, value in opt.get_state().items():  # step, and state once bound
            arrays["optimizer." + key] = value
    hist = getattr(net, "history_", None)
    if hist is not None:
        best = getattr(hist, "best_epoch", None)
        meta["history"] = {"samples": int(hist.samples),
                           "stop_reason": None if hist.stop_reason is None else str(hist.stop_reason),
                           "best_epoch": None if best is None else int(best)}
        for key in ("loss", "lr", "epoch_time", "val_loss"):
            arrays["history." + key] = np.asarray(getattr(hist, key, []),
                                                  dtype=np.float64).reshape(-1)
        arrays["history.val_score"] = np.array(
            [np.nan if v is None else v for v in getattr(hist, "val_score", [])],
            dtype=np.float64).reshape(-1)
        norms = getattr(hist, "grad_norms", [])
        arrays["history.grad_norms"] = (np.asarray(norms, dtype=np.float64) if len(norms)
                                        else np.zeros((0, 0)))
        if arrays["history.grad_norms"].ndim != 2:
            raise ValueError("history.grad_norms must be a list of per-layer lists")
    for name, value in (extra or {}).items():
        if not isinstance(name, str) or not _EXTRA_NAME.match(name):
            raise ValueError(f"extra array names must be 1-64 letters, digits or '_', got {name!r}")
        arr = np.asarray(value)
        if arr.dtype.kind not in _EXTRA_KINDS:
            raise TypeError(f"extra array {name!r} must be bool, integer or float, "
                            f"got dtype {arr.dtype}")
        arrays["extra." + name] = np.ascontiguousarray(arr)
        meta["extra"].append(name)
    text = json.dumps(meta, allow_nan=False, sort_keys=True)
    arrays["meta"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    return arrays


def _fastbp_version():
    from ._version import __version__
    return __version__


def save(net, path, *, extra=None):
    """Write ``net`` (parameters, settings, RNG, optimizer, history) to ``path``.

    Parameters
    ----------
    net : fastbp.MLP
    path : str or os.PathLike
        Written exactly as given (no ``.npz`` is appended).  The file appears
        atomically: readers see the old file or the complete new one.
    extra : dict of str -> array-like, optional
        Additional named bool/integer/float arrays stored as ``extra.<name>``
        (the format's extension point); read them back with
        ``load(path, return_extra=True)``.

    Raises
    ------
    ValueError, TypeError
        The network cannot be saved (non-finite parameters, an unsupported
        optimizer class or generator); nothing is written.
    OSError
        Writing failed; an existing file at ``path`` is left untouched.
    """
    if not isinstance(net, _network_class()):
        raise TypeError(f"save() needs a fastbp.MLP, got {type(net).__name__}")
    path = os.fsdecode(os.fspath(path))
    with net._lock:  # a consistent snapshot if another thread is training
        arrays = _collect(net, extra)
        arrays = {k: np.array(v, copy=True) for k, v in arrays.items()}
    save_npz(path, arrays)


# ------------------------------------------------------------------------ load
def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_keys(obj, keys, what):
    if not isinstance(obj, dict):
        _fail(f"{what} must be a JSON object, got {type(obj).__name__}")
    if set(obj) != keys:
        missing, unknown = sorted(keys - set(obj)), sorted(set(obj) - keys)
        _fail(f"{what} has missing keys {missing} / unknown keys {unknown}")


def _decode_state(value, depth=0):
    if depth > 8:
        _fail("generator state is nested too deeply")
    if isinstance(value, dict):
        if set(value) == {"__ndarray__", "dtype"}:
            dt = value["dtype"]
            if dt not in ("uint32", "uint64", "int32", "int64"):
                _fail(f"generator state array has unsupported dtype {dt!r}")
            data = value["__ndarray__"]
            if not isinstance(data, list) or not all(_is_int(v) for v in data):
                _fail("generator state array must be a list of integers")
            try:
                return np.array(data, dtype=dt)
            except OverflowError:
                _fail("generator state array holds out-of-range integers")
        return {k: _decode_state(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (bool, int, float, str)):
        return value
    _fail(f"unexpected value of type {type(value).__name__} in the generator state")


def _restore_rng(state):
    if not isinstance(state, dict) or state.get("bit_generator") not in _BIT_GENERATORS:
        _fail(f"rng must describe one of the bit generators {', '.join(_BIT_GENERATORS)}")
    bg = getattr(np.random, state["bit_generator"])()
    try:
        bg.state = _decode_state(state)
    except FormatError:
        raise
    except Exception as exc:
        _fail(f"invalid generator state: {exc}")
    return np.random.Generator(bg)


def _architecture(arch):
    """Validated architecture, the parameter count and the statistics count."""
    loss = arch.get("loss") if isinstance(arch, dict) else None
    loss_key = _LOSS_KEYS.get(loss) if isinstance(loss, str) else None
    _check_keys(arch, _ARCH_KEYS | ({loss_key} if loss_key else set()), "meta['architecture']")
    sizes = arch["sizes"]
    try:
        if not isinstance(sizes, list):
            raise TypeError(f"a list of layer widths is needed, got {sizes!r}")
        spec.check_sizes(sizes)
    except (TypeError, ValueError) as exc:
        _fail(f"invalid sizes: {exc}")
    n_hidden = len(sizes) - 2
    acts = arch["activations"]
    if not isinstance(acts, list) or len(acts) != n_hidden + 1 or \
            not all(isinstance(a, str) for a in acts):
        _fail(f"activations must list one name per layer ({n_hidden + 1}), got {acts!r}")
    if any(a not in spec.HIDDEN_ACTIVATIONS for a in acts[:-1]):
        _fail(f"hidden activations must be among {spec.HIDDEN_ACTIVATIONS}, got {acts[:-1]!r}")
    if acts[-1] not in spec.OUTPUT_ACTIVATIONS:
        _fail(f"output activation must be among {spec.OUTPUT_ACTIVATIONS}, got {acts[-1]!r}")
    if arch["loss"] not in spec.LOSS_NAMES.values():
        _fail(f"unknown loss {arch['loss']!r}")
    if arch["dtype"] not in {dt.name for dt in spec.DTYPES}:
        _fail(f"dtype must be 'float32' or 'float64', got {arch['dtype']!r}")
    init = arch["init"]
    if not isinstance(init, str) or (init != "auto" and init not in set(spec.INITS.values())):
        _fail(f"unknown init {init!r}")
    for key in ("leaky_slope", "elu_alpha", "bn_momentum", "bn_eps", *_LOSS_KEYS.values()):
        if key in arch and not _is_real(arch[key]):
            _fail(f"{key} must be a finite number, got {arch[key]!r}")
    drop, bn = arch["dropout"], arch["batch_norm"]
    if not isinstance(drop, list) or len(drop) != n_hidden or not all(_is_real(p) for p in drop):
        _fail(f"dropout must list one rate per hidden layer ({n_hidden}), got {drop!r}")
    if not isinstance(bn, list) or len(bn) != n_hidden or not all(isinstance(b, bool) for b in bn):
        _fail(f"batch_norm must list one flag per hidden layer ({n_hidden}), got {bn!r}")
    try:
        _, n_params, n_stats = spec.build_layout(sizes, [spec.ACTIVATIONS[a] for a in acts],
                                                 bn + [False])
    except OverflowError:
        _fail(f"sizes {sizes!r} describe more parameters than an array can hold")
    return arch, n_params, n_stats


def _build_optimizer(info, reader, n_params, dtype):
    _check_keys(info, _OPT_KEYS, "meta['optimizer']")
    name = info["class"]
    if not isinstance(name, str) or name not in _ATTRIBUTES:
        _fail(f"unknown optimizer class {name!r}; expected one of {list(_ATTRIBUTES)}")
    attrs = info["attributes"]
    _check_keys(attrs, set(_ATTRIBUTES[name]), f"the {name} attributes")
    for key, v in attrs.items():
        ok = (isinstance(v, bool) if key == "nesterov" else
              v is None or _is_real(v) if key == "clip_norm" else _is_real(v))
        if not ok:
            _fail(f"optimizer attribute {key} has invalid value {v!r}")
    if not isinstance(info["bound"], bool):
        _fail("meta['optimizer']['bound'] must be true or false")
    hyper = reader.array("optimizer.hyper", np.float64, shape=(optim.N_HYPER,), finite=True)
    step = reader.array("optimizer.step", np.int64, shape=(1,))
    if step[0] < 0:
        _fail(f"optimizer step count must be >= 0, got {step[0]}")
    try:
        opt = optim.from_hyper(name, hyper, **attrs)
    except (ValueError, TypeError) as exc:
        _fail(f"invalid optimizer settings: {exc}")
    state = None
    if info["bound"]:
        state = reader.array("optimizer.state", dtype, shape=opt.state_shape(n_params),
                             finite=True)
    opt.set_state(step, state)
    return opt


def _build_history(info, reader, n_layers):
    _check_keys(info, _HIST_KEYS, "meta['history']")
    if not _is_int(info["samples"]) or info["samples"] < 0:
        _fail(f"history samples must be an integer >= 0, got {info['samples']!r}")
    if info["stop_reason"] is not None and not isinstance(info["stop_reason"], str):
        _fail("history stop_reason must be a string or null")
    best = info["best_epoch"]
    if best is not None and not (_is_int(best) and best >= 0):
        _fail(f"history best_epoch must be null or an integer >= 0, got {best!r}")
    cols = {k: reader.array("history." + k, np.float64, ndim=1) for k in _HIST_ARRAYS[:-1]}
    norms = reader.array("history.grad_norms", np.float64, ndim=2)
    if not cols["loss"].size == cols["lr"].size == cols["epoch_time"].size:
        _fail("history loss/lr/epoch_time arrays have different lengths")
    if cols["val_loss"].size != cols["val_score"].size:
        _fail("history val_loss/val_score arrays have different lengths")
    if norms.size and norms.shape[1] != n_layers:
        _fail(f"history grad_norms must have one column per layer ({n_layers})")
    hist = History()
    for key in ("loss", "lr", "epoch_time", "val_loss"):
        setattr(hist, key, cols[key].tolist())
    hist.val_score = [None if math.isnan(v) else v for v in cols["val_score"].tolist()]
    hist.grad_norms = norms.tolist() if norms.size else []
    hist.samples = info["samples"]
    hist.stop_reason = info["stop_reason"]
    hist.best_epoch = best
    return hist


def _load(fh, file_size, return_extra):
    MLP = _network_class()

    with NpzReader(fh, file_size, FormatError) as reader:
        if "meta" not in reader.names:
            _fail("not a fastbp network file (no 'meta' member)")
        raw = reader.array("meta", np.uint8, ndim=1)
        if raw.size > _MAX_META_BYTES:
            _fail("the metadata is implausibly large")
        try:
            meta = json.loads(raw.tobytes().decode("utf-8"),
                              parse_constant=lambda c: _fail(f"non-finite number {c} in metadata"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            _fail(f"the metadata is not valid UTF-8 JSON: {exc}")
        if not isinstance(meta, dict):
            _fail(f"the metadata must be a JSON object, got {type(meta).__name__}")
        if meta.get("format") != FORMAT_NAME:
            _fail(f"not a fastbp network file (format {meta.get('format')!r}, "
                  f"expected {FORMAT_NAME!r})")
        version = meta.get("version")
        if not _is_int(version) or version < 1:
            _fail(f"invalid format version {version!r}")
        if version > FORMAT_VERSION:
            _fail(f"the file has format version {version}, newer than this fastbp "
                  f"({_fastbp_version()}) can read (up to {FORMAT_VERSION}); upgrade fastbp")
        _check_keys(meta, _META_KEYS, "the metadata")
        arch, n_params, n_stats = _architecture(meta["architecture"])
        counter, dseed = meta["counter"], meta["dropout_seed"]
        if not (_is_int(counter) and 0 <= counter < 2 ** 63):
            _fail(f"counter must be an integer >= 0, got {counter!r}")
        if not (_is_int(dseed) and 0 <= dseed < 2 ** 63):
            _fail(f"dropout_seed must be an integer in [0, 2**63), got {dseed!r}")

        expected = {"meta", "params", "stats"}
        if meta["optimizer"] is not None:
            _check_keys(meta["optimizer"], _OPT_KEYS, "meta['optimizer']")
            expected |= {"optimizer.hyper", "optimizer.step"}
            if meta["optimizer"]["bound"] is True:
                expected.add("optimizer.state")
        if meta["history"] is not None:
            expected |= {"history." + k for k in _HIST_ARRAYS}
        extra_names = meta["extra"]
        if not isinstance(extra_names, list) or not all(
                isinstance(n, str) and _EXTRA_NAME.match(n) for n in extra_names) \
                or len(set(extra_names)) != len(extra_names):
            _fail(f"meta['extra'] must list distinct array names, got {extra_names!r}")
        expected |= {"extra." + n for n in extra_names}
        if reader.names != expected:
            _fail(f"the archive has missing arrays {sorted(expected - reader.names)} / "
                  f"unexpected arrays {sorted(reader.names - expected)}")

        dtype = np.dtype(arch["dtype"])
        params = reader.array("params", dtype, shape=(n_params,), finite=True)
        stats = reader.array("stats", dtype, shape=(n_stats,), finite=True)
        rng = _restore_rng(meta["rng"])
        try:
            net = MLP(arch["sizes"], activation=arch["activations"][:-1],
                      output=arch["activations"][-1], loss=arch["loss"], init=arch["init"],
                      dtype=dtype, seed=0, leaky_slope=arch["leaky_slope"],
                      elu_alpha=arch["elu_alpha"], dropout=arch["dropout"],
                      batch_norm=arch["batch_norm"], bn_momentum=arch["bn_momentum"],
                      bn_eps=arch["bn_eps"],
                      **{k: arch[k] for k in _LOSS_KEYS.values() if k in arch})
        except (ValueError, TypeError) as exc:
            _fail(f"invalid architecture: {exc}")
        net._params[:] = params
        net._stats[:] = stats
        if any(v is not None and np.any(v < 0) for v in net.running_var):
            _fail("batch-norm running variances must be >= 0")
        net._counter[0] = counter
        net._dropout_seed = dseed
        net._make_views()  # the kernels' Model bundle carries the dropout seed
        net.rng = rng
        if meta["optimizer"] is not None:
            net.optimizer = _build_optimizer(meta["optimizer"], reader, n_params, dtype)
        if meta["history"] is not None:
            net.history_ = _build_history(meta["history"], reader, len(arch["sizes"]) - 1)
        extra = {n: reader.array("extra." + n) for n in extra_names}
    return (net, extra) if return_extra else net


def load(path, *, return_extra=False):
    """Read a network written by :func:`save`.

    Parameters
    ----------
    path : str or os.PathLike
    return_extra : bool, default False
        Also return the dict of ``extra`` arrays stored with the network.

    Returns
    -------
    MLP, or (MLP, dict) with ``return_extra``
        The network with its parameters, batch-norm statistics, settings and
        generator state; its ``optimizer`` (an equal SGD/Adam/AdamW/RPROP with
        the saved state) and ``history_`` when they were saved.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    FormatError
        (a ValueError) the file is not a valid fastbp network file: truncated,
        corrupted, crafted, or of a newer format version.
    """
    path = os.fspath(path)
    remove_stale_temporaries(os.fsdecode(path))
    with open(path, "rb") as fh:
        file_size = os.fstat(fh.fileno()).st_size
        try:
            return _load(fh, file_size, return_extra)
        except FormatError as exc:
            raise FormatError(f"{os.fsdecode(path)!r}: {exc}") from None
        except Exception as exc:  # zipfile/npy/JSON errors on damaged input
            raise FormatError(f"{os.fsdecode(path)!r} is not a valid fastbp network file "
                              f"(damaged or truncated?): {type(exc).__name__}: {exc}") from None
