"""The one thread pool fastbp's own threads come from (two-thread epochs, population
chunks, the finiteness scan of large inputs), created lazily."""

import threading
from concurrent.futures import ThreadPoolExecutor

_POOL = []  # [workers, executor]: one, created lazily, replaced when more are needed
_POOL_LOCK = threading.Lock()


def executor(workers):
    """A thread pool of at least ``workers`` threads, shared by all of fastbp."""
    with _POOL_LOCK:
        if not _POOL or _POOL[0] < workers:
            # a replaced pool is not shut down: a concurrent caller may still be using
            # it; its idle threads exit once it is garbage collected
            _POOL[:] = [workers, ThreadPoolExecutor(workers, thread_name_prefix="fastbp-chunk")]
        return _POOL[1]
