"""Generated, shape-specialised epoch kernels (see ``engine.py``)."""
