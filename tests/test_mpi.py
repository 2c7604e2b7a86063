"""Data-parallel training over real MPI: 2 ranks launched with mpiexec.

Skipped when mpi4py or an ``mpiexec`` is missing (``pip install mpi4py mpich``
provides both).  Each test launches ``mpiexec -n 2 python -m mpi4py SCRIPT
TMPDIR`` in its own process group with a timeout; the scripts in
``tests/mpi_scripts`` write their results to TMPDIR.
"""

import importlib.util
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fastbp.distributed import find_mpiexec, shard_range

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SCRIPTS = os.path.join(HERE, "mpi_scripts")
MPIEXEC = find_mpiexec()

needs_mpi = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
    reason="needs mpi4py and mpiexec (pip install mpi4py mpich)")


def launch(script, tmp_path, n=2, timeout=150):
    """Run ``script`` on ``n`` ranks; returns (returncode, output, seconds).

    The job runs in its own session; on timeout the whole process group is
    killed and the test fails (a hang is a failure).
    """
    env = dict(os.environ)
    env.update({
        # one thread per rank: 2 ranks fit a 2-core CI machine
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
        "NUMBA_NUM_THREADS": "1",
        # MPICH's hydra: start ranks with fork (no ssh) in containers
        "HYDRA_LAUNCHER": "fork",
        # Open MPI, should that be the mpiexec found: allow root and 2 ranks anywhere
        "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "OMPI_MCA_rmaps_base_oversubscribe": "1",
        "PYTHONPATH": os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p),
    })
    cmd = [MPIEXEC, "-n", str(n), sys.executable, "-m", "mpi4py",
           os.path.join(SCRIPTS, script), str(tmp_path)]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=ROOT, start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"mpiexec -n {n} {script} still running after {timeout} s (hang?):\n"
                    f"{output[-4000:]}")
    return proc.returncode, output, time.monotonic() - t0


def test_shard_range_covers_batch_contiguously():
    for n in range(0, 30):
        for size in range(1, 6):
            bounds = [shard_range(n, size, r) for r in range(size)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(bounds[r][1] == bounds[r + 1][0] for r in range(size - 1))
            lengths = [hi - lo for lo, hi in bounds]
            assert max(lengths) - min(lengths) <= 1


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Run train_check.py once on 2 ranks; both ranks' results."""
    if importlib.util.find_spec("mpi4py") is None or MPIEXEC is None:
        pytest.skip("needs mpi4py and mpiexec (pip install mpi4py mpich)")
    tmp = tmp_path_factory.mktemp("mpi_train")
    # generous: a cold Numba cache compiles the kernels in both ranks (~1 min on 2 cores)
    rc, output, _ = launch("train_check.py", tmp, timeout=300)
    assert rc == 0, f"mpiexec exited with {rc}:\n{output[-6000:]}"
    ranks = [dict(np.load(tmp / f"rank{r}.npz")) for r in range(2)]
    return tmp, ranks, output


@needs_mpi
def test_world_size_is_really_two(two_ranks):
    _, ranks, _ = two_ranks
    assert [int(r["size"]) for r in ranks] == [2, 2]
    assert [int(r["rank"]) for r in ranks] == [0, 1]
    assert int(ranks[0]["A_world2"]) == 2 and int(ranks[0]["A_world1"]) == 1


@needs_mpi
def test_two_ranks_equal_one_rank_float64(two_ranks):
    _, ranks, _ = two_ranks
    r = ranks[0]
    for case in "AB":
        p2, p1, p0 = r[f"{case}_p2"], r[f"{case}_p1"], r[f"{case}_p0"]
        np.testing.assert_allclose(p2, p1, rtol=0, atol=1e-10, err_msg=case)
        np.testing.assert_allclose(p1, p0, rtol=0, atol=1e-10, err_msg=case)  # = MLP.fit
    np.testing.assert_allclose(r["A_loss2"], r["A_loss1"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r["A_loss1"], r["A_loss0"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r["A_val2"], r["A_val1"], rtol=1e-12, atol=1e-12)
    assert str(r["A_stop2"]) == str(r["A_stop1"])


@needs_mpi
def test_ranks_hold_bit_identical_replicas(two_ranks):
    _, (r0, r1), _ = two_ranks
    for key in ("A_p2", "B_p2", "D_p", "D_mean", "D_var", "A_loss2", "A_val2",
                "A_score2", "D_loss", "D_steps", "D_eval"):
        assert np.array_equal(r0[key], r1[key]), key
    assert bool(r0["D_identical"]) and bool(r1["D_identical"])
    # each rank alone evaluates the same network, so the sharded evaluation agrees
    np.testing.assert_allclose(r0["D_eval"], r0["D_eval_local"], rtol=1e-12)


@needs_mpi
def test_thread_budget_and_oversubscription_warning(two_ranks):
    _, (r0, r1), _ = two_ranks
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert int(r0["threads_per_rank"]) == max(1, cores // 2)
    assert bool(r0["oversub_warned"]) and bool(r1["oversub_warned"])


@needs_mpi
def test_only_root_saves(two_ranks):
    tmp, ranks, _ = two_ranks
    io = pytest.importorskip("fastbp.io")
    assert sorted(p.name for p in tmp.iterdir()) == ["model.npz", "rank0.npz", "rank1.npz"]
    net = io.load(tmp / "model.npz")
    assert np.array_equal(net.params, ranks[0]["A_p2"])
    assert net.history_.loss == list(ranks[0]["A_loss2"])


@needs_mpi
def test_failure_on_one_rank_aborts_the_job(tmp_path):
    rc, output, seconds = launch("fail_rank1.py", tmp_path, timeout=120)
    assert rc != 0, output[-4000:]
    assert "deliberate failure on rank 1" in output
    assert not (tmp_path / "rank0_finished").exists()
