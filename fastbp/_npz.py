"""Safe ``.npz`` files: atomic writes and a checked reader that never unpickles.

Nothing here knows what the arrays mean; :mod:`fastbp.io` (the network
format), ``fastbp.export`` and the callbacks write through
:func:`write_atomic` / :func:`save_npz`, and :mod:`fastbp.io` reads through
:class:`NpzReader`.

Writing
-------
:func:`write_atomic` writes to a temporary file in the target's folder,
flushes and fsyncs it, then atomically replaces the target with
:func:`os.replace` (and fsyncs the folder where the platform allows): a
failure at any point leaves an existing file untouched and no temporary file
behind.  A symbolic link at the target is replaced by the file, not followed.

A writer killed mid-save (SIGKILL, power loss) cannot clean up after itself
and leaves its temporary ``.<name>.<16 hex digits>.tmp`` beside the target.
Writers hold an exclusive ``flock`` on their temporary until it is renamed,
and the kernel drops that lock when a process dies, so
:func:`remove_stale_temporaries` (run by every write, and by readers) removes
the temporaries of that path whose lock it can take at once -- those of dead
writers -- and never a live writer's, nor any other file.  (Where ``fcntl``
is missing, on Windows, nothing is removed.)

Reading
-------
:class:`NpzReader` checks the ZIP structure (no duplicate, compressed,
non-``.npy`` or oversized members), then each member's ``.npy`` header
(dtype: bool/int/uint/float only, never object; shape; size against the
member and the file) before any data is read, and reads with
``allow_pickle=False``.  Every failure raises the caller's error class.
"""

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

__all__ = ["write_atomic", "save_npz", "remove_stale_temporaries", "NpzReader"]


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
    """The names :func:`write_atomic` gives its temporaries for a target named ``base``."""
    return re.compile(r"\." + re.escape(base) + r"\.[0-9a-f]{16}\.tmp\Z")


def _same_file(a, b):
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _create_locked_temp(directory, base):
    """A new temporary ``(name, fd)`` beside the target, exclusively flock-ed while written.

    The lock tells :func:`remove_stale_temporaries` that a live writer owns
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


def remove_stale_temporaries(path):
    """Delete the temporaries of ``path`` left by writers that died (killed mid-save).

    Only regular files named like :func:`write_atomic`'s temporaries for this
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


def write_atomic(path, write):
    """Create ``path`` with what ``write(fh)`` writes (binary) through a locked
    temporary and a rename.

    Stale temporaries of ``path`` (from writers killed mid-save) are removed
    first.  The temporary stays locked until it has been renamed over ``path``.
    """
    remove_stale_temporaries(path)
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


def save_npz(path, arrays):
    """Write ``arrays`` (a dict name -> ndarray) to ``path`` as an uncompressed ``.npz``,
    atomically (see :func:`write_atomic`) and without pickling."""
    write_atomic(path, lambda fh: np.savez(fh, allow_pickle=False, **arrays))


class NpzReader:
    """Validated access to the members of an ``.npz`` archive.

    Parameters
    ----------
    fh : binary file object
        Open at the start of the archive.
    file_size : int
        Its size in bytes (bounds every member's claimed size).
    error : type
        The exception class raised (with a message) for anything invalid.

    Use as a context manager; :meth:`array` reads one member, checked.
    """

    def __init__(self, fh, file_size, error=ValueError):
        self.error = error
        obj = np.load(fh, allow_pickle=False)
        if not isinstance(obj, np.lib.npyio.NpzFile):
            self._fail("a plain .npy array, not an .npz archive")
        self.npz = obj
        try:
            self._check_members(file_size)
        except BaseException:
            obj.close()
            raise

    def _check_members(self, file_size):
        infos = self.npz.zip.infolist()
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            self._fail("the archive holds duplicate member names")
        for info in infos:
            if not info.filename.endswith(".npy") or info.is_dir():
                self._fail(f"unexpected archive member {info.filename!r}")
            if info.compress_type != zipfile.ZIP_STORED:
                self._fail(f"archive member {info.filename!r} is compressed; fastbp files "
                           "store arrays uncompressed")
            if info.file_size > file_size or info.compress_size > file_size:
                self._fail(f"archive member {info.filename!r} claims {info.file_size} bytes, "
                           f"more than the whole file ({file_size} bytes)")
        self.infos = {i.filename[:-4]: i for i in infos}
        #: Member names, without ``.npy``.
        self.names = set(self.infos)

    def _fail(self, msg):
        raise self.error(msg)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.npz.close()

    def array(self, name, dtype=None, ndim=None, shape=None, finite=False):
        """The member ``name`` (without ``.npy``), checked before it is read.

        ``dtype``/``ndim``/``shape``: what the header must declare; ``finite``:
        refuse NaN and infinities in a float member.
        """
        if name not in self.infos:
            self._fail(f"missing array {name!r}")
        info = self.infos[name]
        with self.npz.zip.open(info) as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                hshape, fortran, hdtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                hshape, fortran, hdtype = np.lib.format.read_array_header_2_0(fh)
            else:
                self._fail(f"array {name!r} uses unsupported .npy version {version}")
            header_len = fh.tell()
        if hdtype.hasobject or hdtype.kind not in "biuf" or hdtype.fields is not None \
                or hdtype.subdtype is not None:
            self._fail(f"array {name!r} has disallowed dtype {hdtype}")
        if dtype is not None and hdtype != np.dtype(dtype):
            self._fail(f"array {name!r} must have dtype {np.dtype(dtype).name}, got {hdtype.str}")
        if ndim is not None and len(hshape) != ndim:
            self._fail(f"array {name!r} must be {ndim}-D, got shape {hshape}")
        if shape is not None and tuple(hshape) != tuple(shape):
            self._fail(f"array {name!r} must have shape {tuple(shape)}, got {hshape}")
        nbytes = math.prod(hshape) * hdtype.itemsize
        if header_len + nbytes != info.file_size:
            self._fail(f"array {name!r} declares shape {hshape} ({nbytes} bytes) but its "
                       f"member holds {info.file_size - header_len} bytes")
        arr = self.npz[name]  # numpy.load's reader, allow_pickle=False; checks the CRC
        if arr.dtype != hdtype or arr.shape != tuple(hshape):  # pragma: no cover
            self._fail(f"array {name!r} changed while being read")
        if finite and arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            self._fail(f"array {name!r} contains NaN or infinite values")
        return np.ascontiguousarray(arr)
