"""fastbp: fast CPU backpropagation for multilayer perceptrons, in Numba."""

from .history import History
from .network import MLP, DivergenceError
from .optim import SGD, Adam, AdamW

__all__ = ["MLP", "History", "DivergenceError", "SGD", "Adam", "AdamW"]
__version__ = "0.1.0"
