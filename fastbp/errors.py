"""Every exception class fastbp raises of its own, in one module that imports nothing back.

Kept apart (as scikit-learn's ``sklearn.exceptions``) so that any module can
raise them without importing the module that happens to use them most; the
classes are re-exported where they were first defined (``fastbp.network``,
``fastbp.io``) and at the top level, so old imports and pickles still work.
"""

__all__ = ["DivergenceError", "FormatError"]


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss; parameters were restored."""


class FormatError(ValueError):
    """The file is not a valid fastbp network file (or is of a newer version)."""
