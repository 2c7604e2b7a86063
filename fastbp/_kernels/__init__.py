"""Numba kernels: plain arrays and scalars in, results written in place."""
