"""Where an export lands: the path is checked first, the file written atomically.

Files go through :mod:`fastbp.io`'s atomic writer (a locked temporary beside
the target, renamed over it), so on any error an existing file at the path
is untouched and no partial file is left behind.
"""

import os

from .._npz import write_atomic


def check_path(path):
    """``path`` as a ``str`` after checking that its folder exists and it is no folder itself.

    Raises
    ------
    TypeError
        ``path`` is not a str or path-like object.
    FileNotFoundError
        The folder that should hold the file does not exist.
    IsADirectoryError
        ``path`` names an existing folder.
    """
    try:
        path = os.fsdecode(os.fspath(path))
    except TypeError:
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}") from None
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write {path!r}: the folder {directory!r} does not "
                                "exist; create it first")
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {path!r}: it is a folder; give a file name")
    return path


def write_file(path, data):
    """Create or replace ``path`` (checked by :func:`check_path`) with the bytes ``data``."""
    write_atomic(path, lambda fh: fh.write(data))
