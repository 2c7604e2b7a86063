"""Stale temporaries of fastbp.io.save: writers killed mid-save leave them; the
next save or load of the same path removes them, never a live writer's file
nor any other file.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import fastbp
from fastbp.io import load, save

pytest.importorskip("fcntl")

ROOT = str(pathlib.Path(fastbp.__file__).resolve().parent.parent)


def _env():
    """The child imports this tree's fastbp and shares the parent's Numba cache."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _temps(folder, name):
    return sorted(n for n in os.listdir(folder) if n.startswith(f".{name}.") and n.endswith(".tmp"))


def _wait(predicate, what, timeout=120.0):
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:  # pragma: no cover
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


# The child saves once (so the target exists), then saves in a loop whose fsync
# hangs: every kill lands mid-save, with the temporary written and locked.
# (Before the fix, twelve such kills left eleven temporaries of 7 MB each.)
SAVER = textwrap.dedent("""
    import os, sys, time
    import fastbp
    from fastbp import io
    path = sys.argv[1]
    net = fastbp.MLP([40, 60, 10], seed=0)
    io.save(net, path)
    def hang(fd):
        time.sleep(3600)
    os.fsync = hang
    print("saved", flush=True)
    while True:
        io.save(net, path)
""")


def _kill_savers(folder, name, times):
    path = os.path.join(folder, name)
    for _ in range(times):
        child = subprocess.Popen([sys.executable, "-c", SAVER, path], env=_env(), cwd=folder,
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "saved"  # its first save is complete
            # that save removed the earlier children's temporaries: wait for its next one
            _wait(lambda: _temps(folder, name), "the child's temporary")
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=60)
            child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        # the kill left exactly this child's temporary, mid-save
        assert len(_temps(folder, name)) == 1


def test_sigkilled_savers_leave_temporaries_that_save_and_load_remove(tmp_path):
    folder, name = str(tmp_path), "m.npz"
    path = tmp_path / name
    _kill_savers(folder, name, 3)
    stale = _temps(folder, name)
    assert os.path.getsize(tmp_path / stale[0]) > 0
    back = load(path)  # the model the children saved is intact, and load cleans up
    assert np.array_equal(back.params, fastbp.MLP([40, 60, 10], seed=0).params)
    assert _temps(folder, name) == []
    assert sorted(os.listdir(folder)) == [name]

    _kill_savers(folder, name, 2)
    net = fastbp.MLP([40, 60, 10], seed=5)
    save(net, path)
    assert sorted(os.listdir(folder)) == [name]
    assert np.array_equal(load(path).params, net.params)


def test_live_writer_in_another_thread_keeps_its_temporary(tmp_path, monkeypatch):
    path = tmp_path / "m.fbp"
    old, new = fastbp.MLP([3, 4, 2], seed=1), fastbp.MLP([3, 4, 2], seed=2)
    save(old, path)
    entered, gate = threading.Event(), threading.Event()
    real = np.savez

    def paused(*args, **kwargs):
        if threading.current_thread() is writer:
            entered.set()
            assert gate.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(np, "savez", paused)
    writer = threading.Thread(target=save, args=(new, path))
    writer.start()
    try:
        assert entered.wait(60)
        live = _temps(tmp_path, "m.fbp")
        assert len(live) == 1
        save(old, path)  # another save and a load of the same path, meanwhile
        assert np.array_equal(load(path).params, old.params)
        assert _temps(tmp_path, "m.fbp") == live  # the live writer's file survived
    finally:
        gate.set()
        writer.join(60)
    assert _temps(tmp_path, "m.fbp") == []
    assert np.array_equal(load(path).params, new.params)  # and its save completed


HOLDER = textwrap.dedent("""
    import fcntl, os, sys
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, b"partial")
    fcntl.flock(fd, fcntl.LOCK_EX)
    print("locked", flush=True)
    sys.stdin.read()  # hold the lock until the parent closes our stdin
""")


def test_live_writer_in_another_process_keeps_its_temporary(tmp_path):
    path = tmp_path / "m.fbp"
    net = fastbp.MLP([3, 4, 2], seed=1)
    save(net, path)
    tmp = tmp_path / ".m.fbp.0123456789abcdef.tmp"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        save(net, path)
        load(path)
        assert tmp.read_bytes() == b"partial"
    finally:
        holder.stdin.close()
        holder.wait(60)
    assert holder.returncode == 0
    save(net, path)  # its writer is gone: now it is stale
    assert sorted(os.listdir(tmp_path)) == ["m.fbp"]


def test_only_this_paths_temporaries_are_removed(tmp_path):
    path = tmp_path / "m.fbp"
    net = fastbp.MLP([3, 4, 2], seed=1)
    save(net, path)
    hexes = "0123456789abcdef"
    decoys = {
        ".other.fbp.0123456789abcdef.tmp": "file",  # another target's temporary
        ".m.fbp.0123456789abcde.tmp": "file",  # 15 hex digits
        ".m.fbp.0123456789ABCDEF.tmp": "file",  # not what the writer makes
        ".m.fbp.0123456789abcdef.tmp.bak": "file",
        "m.fbp.0123456789abcdef.tmp": "file",  # no leading dot
        ".m.fbp.aaaaaaaaaaaaaaaa.tmp": "dir",  # right name, not a regular file
        ".m.fbp.bbbbbbbbbbbbbbbb.tmp": "link",  # right name, a symbolic link
        "m.fbp.bak": "file",
    }
    target = tmp_path / "precious"
    target.write_bytes(b"keep")
    for name, kind in decoys.items():
        if kind == "file":
            (tmp_path / name).write_bytes(b"x")
        elif kind == "dir":
            (tmp_path / name).mkdir()
        else:
            (tmp_path / name).symlink_to(target)
    stale = tmp_path / f".m.fbp.{hexes[::-1]}.tmp"
    stale.write_bytes(b"stale")  # no writer holds it
    save(net, path)
    load(path)
    assert sorted(os.listdir(tmp_path)) == sorted(list(decoys) + ["m.fbp", "precious"])
    assert target.read_bytes() == b"keep"
