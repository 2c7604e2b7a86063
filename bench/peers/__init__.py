"""One module per peer of the fastbp comparison benchmark (bench/compare.py).

See :mod:`peers.common` for the interface each module implements.
"""

PEERS = ("fastbp", "torch", "jax", "sklearn", "numpy")


def load(name):
    import importlib

    return importlib.import_module("%s.%s_peer" % (__name__, name))
