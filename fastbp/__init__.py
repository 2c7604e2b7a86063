"""fastbp: fast CPU backpropagation for multilayer perceptrons, in Numba.

Main entry points: :class:`MLP`; optimizers :class:`SGD`, :class:`Adam`,
:class:`AdamW`, :class:`RPROP`; :class:`~fastbp.population.Population`;
:func:`load`; training callbacks in :mod:`fastbp.callbacks`; the
``@njit``-callable API in :mod:`fastbp.jit`.
"""

from . import callbacks, export
from .history import History
from .io import load, save
from ._version import __version__
from .errors import DivergenceError
from .network import MLP
from .optim import RPROP, SGD, Adam, AdamW
from .population import Population
from .threads import threads

__all__ = ["MLP", "History", "DivergenceError", "SGD", "Adam", "AdamW", "RPROP",
           "Population", "threads", "load", "save", "callbacks", "export", "__version__"]
