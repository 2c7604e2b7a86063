"""``compare.py --check``: each peer trains one epoch from the common initial
weights; on digits every peer must lower the loss, on each random
architecture (``CHECK_BATCHES`` batches) every peer's weights must match the
NumPy peer's within ``CHECK_TOL`` of the NumPy update -- the same loss, the
same batches, forward + backward + update, nothing skipped."""

from __future__ import annotations

import os

import numpy as np

try:  # imported as bench.peer_check (asv)
    from .peers import load
    from .peers.common import data_digest, init_params, make_data, reference_loss, thread_limits
    from .peers.random_cases import case_by_name, case_list
except ImportError:  # imported by compare.py run as a script (bench/ on sys.path)
    from peers import load
    from peers.common import data_digest, init_params, make_data, reference_loss, thread_limits
    from peers.random_cases import case_by_name, case_list

CHECK_CASE = "digits-b32"
CHECK_N = 57_504  # 1797 batches of 32: one epoch of --check
CHECK_BATCHES = 64  # batches of one --check epoch on a random case


def check_samples(case):
    """Samples of one ``--check`` epoch: CHECK_N on digits, else CHECK_BATCHES batches."""
    if case.name == CHECK_CASE:
        return CHECK_N
    return min(case.n, CHECK_BATCHES * case.batch)


def worker_check(peer, case_names, params_dir):
    """One epoch per case from the common initial weights; losses before and
    after (float64 numpy) and the weights saved to ``params_dir``."""
    mod = load(peer)
    ok, why = mod.available()
    if not ok:
        return {"status": "skipped", "reason": why}
    out = {"status": "ok", "cases": {}}
    with thread_limits(use_numba=(peer == "fastbp")):
        for case in case_list(case_names, False):
            X, y = make_data(case)
            n = check_samples(case)
            X, y = X[:n], y[:n]
            init = init_params(case)
            B = case.batch
            r = out["cases"][case.name] = {"digest": data_digest(X, y)}
            try:
                tr = mod.make_trainer(case, X, y, init)
                tr.epoch()
                P = tr.params()
            except Exception as e:  # report, go on with the next case
                r["error"] = "%s: %s" % (type(e).__name__, e)
                continue
            r["note"] = getattr(tr, "note", "")
            if getattr(tr, "engine", None):
                r["engine"] = tr.engine
            if P is None:
                r["note"] += "; weights not readable, history=%r" % (getattr(tr, "history", None),)
                continue
            r["first_batch_loss_init"] = reference_loss(case, init, X[:B], y[:B])
            r["last_batch_loss_final"] = reference_loss(case, P, X[-B:], y[-B:])
            r["epoch_loss_init"] = reference_loss(case, init, X, y)
            r["epoch_loss_final"] = reference_loss(case, P, X, y)
            np.savez(os.path.join(params_dir, "%s-%s.npz" % (peer, case.name)),
                     *[a for Wb in P for a in Wb])
    return out


CHECK_TOL = 1e-2  # random cases: max |W - W_numpy| <= this * max |W_numpy - W0|


def _load_params(path):
    with np.load(path) as z:
        return [z["arr_%d" % i] for i in range(len(z.files))]


def _max_abs_diff(P, Q):
    return max(float(np.abs(np.asarray(a, np.float64) - b).max()) for a, b in zip(P, Q))


def run_check(args, plan, spawn):
    """One epoch per (peer, case) of ``plan`` ({peer: case names}; ``spawn`` is
    compare.py's peer-process launcher) from the
    common initial weights.  digits: every peer must lower the loss.  Random
    cases (CHECK_BATCHES batches): every peer's weights must match the NumPy
    peer's within CHECK_TOL of the NumPy update (same loss, same batches, same
    update: nothing skipped), and the update must not be zero."""
    import tempfile

    tmp = tempfile.mkdtemp(prefix="fastbp-check-")
    res = {p: spawn(p, args, names, ["--check", "--params-path", tmp])
           for p, names in plan.items()}
    bad = []
    for p, r in res.items():
        if r.get("status") != "ok":
            print("%-8s %s: %s" % (p, r.get("status"), r.get("reason")))
            if r.get("status") != "skipped":
                bad.append(p)
    case_names = []
    for names in plan.values():
        case_names += [n for n in names if n not in case_names]
    for cname in case_names:
        case = case_by_name(cname)
        n = check_samples(case)
        rnd = cname != CHECK_CASE
        print()
        print("check %s: %s, batch %d, lr %g, one epoch of %d samples (%d batches) from the "
              "common initial weights" % (cname, "-".join(map(str, case.sizes)) + " %s %s" % (
                  case.hidden, case.loss), case.batch, case.lr, n, n // case.batch))
        init = [a for Wb in init_params(case) for a in Wb]
        P = {p: _load_params(os.path.join(tmp, "%s-%s.npz" % (p, cname)))
             for p in plan if os.path.exists(os.path.join(tmp, "%s-%s.npz" % (p, cname)))}
        ref = P.get("numpy")
        upd = _max_abs_diff(ref, init) if ref is not None else None
        print("%-8s %14s %14s %12s %12s %12s %12s  %s" % (
            "peer", "batch0 loss@0", "last batch@end", "epoch@0", "epoch@end",
            "max|dW| vs np", "max|W-W0|", "note"))
        digests = set()
        for p in plan:
            if res[p].get("status") != "ok" or cname not in res[p].get("cases", {}):
                continue
            r = res[p]["cases"][cname]
            digests.add(r.get("digest"))
            if "error" in r or "first_batch_loss_init" not in r:
                print("%-8s %s" % (p, r.get("error") or "weights not readable: " + r.get("note", "")))
                # sklearn cannot run a 2-class softmax: not a failure of the benchmark
                if not (p == "sklearn" and "2 classes" in r.get("error", "")):
                    bad.append("%s/%s" % (p, cname))
                continue
            d = _max_abs_diff(P[p], ref) if ref is not None and p in P else None
            moved = _max_abs_diff(P[p], init) if p in P else 0.0
            if rnd:
                ok = moved > 0 and all(np.isfinite(r[k]) for k in (
                    "epoch_loss_init", "epoch_loss_final")) and (
                    d is None or d <= CHECK_TOL * upd)
                why = "" if ok else "WEIGHTS DIFFER FROM NUMPY'S OR DID NOT MOVE "
            else:
                ok = r["last_batch_loss_final"] < r["first_batch_loss_init"] and \
                    r["epoch_loss_final"] < r["epoch_loss_init"]
                why = "" if ok else "LOSS DID NOT DECREASE "
            if not ok:
                bad.append("%s/%s" % (p, cname))
            eng = ("engine %s; " % r["engine"]) if r.get("engine") else ""
            print("%-8s %14.6f %14.6f %12.6f %12.6f %12s %12.3e  %s%s%s" % (
                p, r["first_batch_loss_init"], r["last_batch_loss_final"],
                r["epoch_loss_init"], r["epoch_loss_final"],
                "—" if d is None else "%.2e" % d, moved, why, eng, r.get("note", "")))
        if len(digests) > 1:
            print("DATA DIGESTS DIFFER between peers: %s" % digests)
            bad.append("data/" + cname)
    print()
    print("check: %s" % ("FAILED for " + ", ".join(bad) if bad else
                         "ok (digits: every peer lowered the loss; random cases: every peer's "
                         "weights match the NumPy peer's within %g of its update)" % CHECK_TOL))
    return 1 if bad else 0
