"""fastbp: fast CPU backpropagation for multilayer perceptrons, in Numba.

Main entry points: :class:`MLP`; optimizers :class:`SGD`, :class:`Adam`,
:class:`AdamW`, :class:`RPROP`; :class:`~fastbp.population.Population`;
:func:`load`; training callbacks in :mod:`fastbp.callbacks`; the
``@njit``-callable API in :mod:`fastbp.jit`.
"""

__version__ = "0.1.0"  # first: submodules (the generated-kernel cache) read it

from . import callbacks, export
from .history import History
from .io import load, save
from .network import MLP, DivergenceError
from .optim import RPROP, SGD, Adam, AdamW
from .population import Population
from .threads import threads

__all__ = ["MLP", "History", "DivergenceError", "SGD", "Adam", "AdamW", "RPROP",
           "Population", "threads", "load", "save", "callbacks", "export"]
