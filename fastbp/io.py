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

The other optimizer settings (betas, eps, RPROP's eta/delta bounds) live in
``optimizer.hyper``; on load the optimizer is rebuilt from its class and
attributes and its hyper-parameter array must come out bit for bit equal to
the stored one (so a file cannot describe an inconsistent optimizer).

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
:func:`save` writes to a temporary file in the target's folder, flushes and
fsyncs it, then atomically replaces the target with :func:`os.replace` (and
fsyncs the folder where the platform allows): a failure at any point leaves an
existing file untouched and no temporary file behind.  The exact path given is
used (no ``.npz`` is appended).  A symbolic link at ``path`` is replaced by
the file, not followed.

A writer killed mid-save (SIGKILL, power loss) cannot clean up after itself
and leaves its temporary ``.<name>.<16 hex digits>.tmp`` beside the target.
Writers hold an exclusive ``flock`` on their temporary until it is renamed,
and the kernel drops that lock when a process dies, so the next
:func:`save` to, or :func:`load` from, the same path removes the temporaries
of that path whose lock it can take at once -- those of dead writers --
and never a live writer's, nor any other file.  (Where ``fcntl`` is missing,
on Windows, nothing is removed.)

:func:`load` validates everything -- the ZIP structure and CRCs, member names,
dtypes, shapes and sizes (against the file's size, before anything is
allocated), the JSON schema, names against the allowed sets, finiteness -- and
raises :class:`FormatError` (a :class:`ValueError`) for a truncated, corrupted,
crafted, wrong-format or newer-version file.  A missing file raises
:class:`FileNotFoundError`.
"""

import json
import math
import os
import re
import secrets
import stat
import zipfile

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: stale temporaries are left alone
    fcntl = None

import numpy as np

from . import spec
from .history import History
from .optim import SGD, Adam, AdamW, RPROP
from ._kernels import update as _u
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


def _adam_kwargs(h):
    return {"betas": (float(h[_u.H_BETA1]), float(h[_u.H_BETA2])), "eps": float(h[_u.H_EPS])}


def _rprop_kwargs(h):
    return {"eta_plus": float(h[_u.H_ETA_PLUS]), "eta_minus": float(h[_u.H_ETA_MINUS]),
            "delta_min": float(h[_u.H_DELTA_MIN]), "delta_max": float(h[_u.H_DELTA_MAX])}


_COMMON = ("weight_decay", "l1", "clip_norm")
#: class name -> (class, attributes stored in meta, constructor kwargs read from hyper)
_OPTIMIZERS = {
    "SGD": (SGD, ("momentum", "nesterov") + _COMMON, lambda h: {}),
    "Adam": (Adam, _COMMON, _adam_kwargs),
    "AdamW": (AdamW, _COMMON, _adam_kwargs),
    "RPROP": (RPROP, ("delta0",) + _COMMON, _rprop_kwargs),
}
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
def _rebuild_optimizer(name, attrs, hyper):
    """An optimizer of class ``name`` from its attributes and hyper array (ValueError/TypeError)."""
    cls, keys, from_hyper = _OPTIMIZERS[name]
    kwargs = {k: attrs[k] for k in keys}
    kwargs.update(from_hyper(hyper))
    opt = cls(lr=float(hyper[_u.H_LR]), **kwargs)
    if opt.hyper.tobytes() != np.asarray(hyper, dtype=np.float64).tobytes():
        raise ValueError("the optimizer's hyper-parameter array disagrees with its attributes")
    return opt


def _optimizer_meta(opt):
    name = type(opt).__name__
    if name not in _OPTIMIZERS or _OPTIMIZERS[name][0] is not type(opt):
        raise TypeError(f"cannot save an optimizer of type {type(opt).__qualname__}; "
                        f"supported: {', '.join(_OPTIMIZERS)}")
    attrs = {}
    for key in _OPTIMIZERS[name][1]:
        v = getattr(opt, key)
        attrs[key] = (None if v is None else bool(v) if key == "nesterov" else float(v))
    try:  # never write a file that load() would reject
        _rebuild_optimizer(name, attrs, opt.hyper)
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
        arrays["optimizer.step"] = np.ascontiguousarray(opt.step, dtype=np.int64)
        if opt.state is not None:
            arrays["optimizer.state"] = np.ascontiguousarray(opt.state)
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


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_pattern(base):
    """The names :func:`_write_atomic` gives its temporaries for a target named ``base``."""
    return re.compile(r"\." + re.escape(base) + r"\.[0-9a-f]{16}\.tmp\Z")


def _same_file(a, b):
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _create_locked_temp(directory, base):
    """A new temporary ``(name, fd)`` beside the target, exclusively flock-ed while written.

    The lock tells :func:`_remove_stale_temporaries` that a live writer owns
    the file; the kernel drops it when the writer dies, even by SIGKILL.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)  # the umask applies, as for a plain open()
        except FileExistsError:  # pragma: no cover
            continue
        if fcntl is None:
            return tmp, fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # waits at most for a cleaner's look at it
        except OSError:  # pragma: no cover - no locks on this file system: write unprotected
            return tmp, fd
        try:  # a cleaner may have taken it between creation and locking
            if _same_file(os.lstat(tmp), os.fstat(fd)):
                return tmp, fd
        except FileNotFoundError:
            pass
        os.close(fd)  # pragma: no cover - that race needs a cleaner in a microsecond window
    raise FileExistsError(f"could not create a temporary file in {directory!r}")  # pragma: no cover


def _remove_stale_temporaries(path):
    """Delete the temporaries of ``path`` left by writers that died (killed mid-save).

    Only regular files named like :func:`_write_atomic`'s temporaries for this
    exact ``path`` are considered, and only those whose lock can be taken at
    once: a live writer (in any process or thread) holds its lock, so its file
    survives.  Without ``fcntl`` (Windows) nothing is removed.  Errors are
    ignored: cleaning never makes a save or load fail.
    """
    if fcntl is None:  # pragma: no cover
        return
    directory = os.path.dirname(os.path.abspath(path))
    pattern = _temp_pattern(os.path.basename(path))
    try:
        names = [n for n in os.listdir(directory) if pattern.match(n)]
    except OSError:
        return
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    for name in names:
        tmp = os.path.join(directory, name)
        try:
            fd = os.open(tmp, flags)
        except OSError:
            continue  # gone already (its writer finished), or not ours to open
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # a live writer holds it (or locks are unsupported): leave it
            if _same_file(os.lstat(tmp), st):
                os.unlink(tmp)
        except OSError:
            pass
        finally:
            os.close(fd)


def _write_atomic(path, write):
    """Create ``path`` with what ``write(fh)`` writes (binary) through a locked
    temporary and a rename.

    Stale temporaries of ``path`` (from writers killed mid-save) are removed
    first.  The temporary stays locked until it has been renamed over ``path``.
    ``fastbp.export`` writes its files through this too.
    """
    _remove_stale_temporaries(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp, fd = _create_locked_temp(directory, os.path.basename(path))
    try:
        with os.fdopen(fd, "wb", closefd=False) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    finally:
        os.close(fd)  # releases the lock
    _fsync_dir(directory)


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
    _write_atomic(path, lambda fh: np.savez(fh, allow_pickle=False, **arrays))


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


class _Reader:
    """Validated access to the members of an open ``.npz``."""

    def __init__(self, npz, file_size):
        self.npz = npz
        infos = npz.zip.infolist()
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            _fail("the archive holds duplicate member names")
        for info in infos:
            if not info.filename.endswith(".npy") or info.is_dir():
                _fail(f"unexpected archive member {info.filename!r}")
            if info.compress_type != zipfile.ZIP_STORED:
                _fail(f"archive member {info.filename!r} is compressed; fastbp files store "
                      "arrays uncompressed")
            if info.file_size > file_size or info.compress_size > file_size:
                _fail(f"archive member {info.filename!r} claims {info.file_size} bytes, more "
                      f"than the whole file ({file_size} bytes)")
        self.infos = {i.filename[:-4]: i for i in infos}
        self.names = set(self.infos)

    def array(self, name, dtype=None, ndim=None, shape=None):
        """The member ``name``, checked (header first, then data) before it is read."""
        if name not in self.infos:
            _fail(f"missing array {name!r}")
        info = self.infos[name]
        with self.npz.zip.open(info) as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                hshape, fortran, hdtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                hshape, fortran, hdtype = np.lib.format.read_array_header_2_0(fh)
            else:
                _fail(f"array {name!r} uses unsupported .npy version {version}")
            header_len = fh.tell()
        if hdtype.hasobject or hdtype.kind not in "biuf" or hdtype.fields is not None \
                or hdtype.subdtype is not None:
            _fail(f"array {name!r} has disallowed dtype {hdtype}")
        if dtype is not None and hdtype != np.dtype(dtype):
            _fail(f"array {name!r} must have dtype {np.dtype(dtype).name}, got {hdtype.str}")
        if ndim is not None and len(hshape) != ndim:
            _fail(f"array {name!r} must be {ndim}-D, got shape {hshape}")
        if shape is not None and tuple(hshape) != tuple(shape):
            _fail(f"array {name!r} must have shape {tuple(shape)}, got {hshape}")
        nbytes = math.prod(hshape) * hdtype.itemsize
        if header_len + nbytes != info.file_size:
            _fail(f"array {name!r} declares shape {hshape} ({nbytes} bytes) but its member "
                  f"holds {info.file_size - header_len} bytes")
        arr = self.npz[name]  # numpy.load's reader, allow_pickle=False; checks the CRC
        if arr.dtype != hdtype or arr.shape != tuple(hshape):  # pragma: no cover
            _fail(f"array {name!r} changed while being read")
        return np.ascontiguousarray(arr)


def _finite_array(arr, name):
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        _fail(f"array {name!r} contains NaN or infinite values")
    return arr


def _architecture(arch):
    """Validated architecture, the parameter count and the statistics count."""
    loss = arch.get("loss") if isinstance(arch, dict) else None
    loss_key = _LOSS_KEYS.get(loss) if isinstance(loss, str) else None
    _check_keys(arch, _ARCH_KEYS | ({loss_key} if loss_key else set()), "meta['architecture']")
    sizes = arch["sizes"]
    if not isinstance(sizes, list) or len(sizes) < 2 or \
            not all(_is_int(s) and s > 0 for s in sizes):
        _fail(f"sizes must be a list of at least two positive integers, got {sizes!r}")
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
    if arch["dtype"] not in ("float32", "float64"):
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
    flags = bn + [False]
    n_params = sum(a * b + b + (2 * b if f else 0) for a, b, f in zip(sizes[:-1], sizes[1:], flags))
    n_stats = sum(2 * b for b, f in zip(sizes[1:], flags) if f)
    return arch, n_params, n_stats


def _build_optimizer(info, reader, n_params, dtype):
    _check_keys(info, _OPT_KEYS, "meta['optimizer']")
    name = info["class"]
    if not isinstance(name, str) or name not in _OPTIMIZERS:
        _fail(f"unknown optimizer class {name!r}; expected one of {list(_OPTIMIZERS)}")
    attrs = info["attributes"]
    _check_keys(attrs, set(_OPTIMIZERS[name][1]), f"the {name} attributes")
    for key, v in attrs.items():
        ok = (isinstance(v, bool) if key == "nesterov" else
              v is None or _is_real(v) if key == "clip_norm" else _is_real(v))
        if not ok:
            _fail(f"optimizer attribute {key} has invalid value {v!r}")
    if not isinstance(info["bound"], bool):
        _fail("meta['optimizer']['bound'] must be true or false")
    hyper = _finite_array(reader.array("optimizer.hyper", np.float64, shape=(_u.N_HYPER,)),
                          "optimizer.hyper")
    step = reader.array("optimizer.step", np.int64, shape=(1,))
    if step[0] < 0:
        _fail(f"optimizer step count must be >= 0, got {step[0]}")
    try:
        opt = _rebuild_optimizer(name, attrs, hyper)
    except (ValueError, TypeError) as exc:
        _fail(f"invalid optimizer settings: {exc}")
    opt.step[:] = step
    if info["bound"]:
        shape = (max(opt.n_state, 1), n_params if opt.n_state else 0)
        opt.state = _finite_array(reader.array("optimizer.state", dtype, shape=shape),
                                  "optimizer.state").copy()
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
    obj = np.load(fh, allow_pickle=False)
    if not isinstance(obj, np.lib.npyio.NpzFile):
        _fail("not a fastbp network file (a plain .npy array, not an .npz archive)")
    with obj as npz:
        reader = _Reader(npz, file_size)
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
        params = _finite_array(reader.array("params", dtype, shape=(n_params,)), "params")
        stats = _finite_array(reader.array("stats", dtype, shape=(n_stats,)), "stats")
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
        if net.n_params != n_params or net._stats.size != n_stats:  # pragma: no cover
            _fail("the architecture does not match the parameter layout")
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
    _remove_stale_temporaries(os.fsdecode(path))
    with open(path, "rb") as fh:
        file_size = os.fstat(fh.fileno()).st_size
        try:
            return _load(fh, file_size, return_extra)
        except FormatError as exc:
            raise FormatError(f"{os.fsdecode(path)!r}: {exc}") from None
        except Exception as exc:  # zipfile/npy/JSON errors on damaged input
            raise FormatError(f"{os.fsdecode(path)!r} is not a valid fastbp network file "
                              f"(damaged or truncated?): {type(exc).__name__}: {exc}") from None
