"""The random-architecture part of ``compare.py``'s report: one row per
architecture (sizes, hidden activation, loss, batch, MACs/sample, samples per
epoch, fastbp's engine, each peer's samples/s, fastbp ÷ best peer), then the
geometric mean and the minimum of the ratios."""

from __future__ import annotations

import math

try:  # imported as bench.random_report (asv)
    from .peers.common import si_format as _si
    from .peers.random_cases import arch_label, macs_per_sample
except ImportError:  # imported by compare.py run as a script (bench/ on sys.path)
    from peers.common import si_format as _si
    from peers.random_cases import arch_label, macs_per_sample


def case_result(results, peer, case):
    """The result dict of ``peer`` on ``case`` ({} when it did not run)."""
    r = results.get(peer, {})
    if r.get("status") != "ok":
        return {}
    return r.get("cases", {}).get(case.name, {})


def valid_sps(cr):
    """samples/s of a result that ran without error and ended finite, else None."""
    if not cr or "error" in cr or cr.get("finite") is False:
        return None
    return cr.get("samples_per_s")


def ratios(results, cases, peers):
    """[(case, fastbp ÷ best other peer or None, best peer name or None)]."""
    others = [p for p in peers if p != "fastbp"]
    out = []
    for c in cases:
        fb = valid_sps(case_result(results, "fastbp", c))
        vals = [(valid_sps(case_result(results, p, c)), p) for p in others]
        vals = [(v, p) for v, p in vals if v]
        if fb and vals:
            best, who = max(vals)
            out.append((c, fb / best, who))
        else:
            out.append((c, None, None))
    return out


def summary(rows):
    """Geometric mean, minimum (and its case name), count below 1 and count of
    the ratios that exist; ``None`` fields when there are none."""
    rs = [(r, c.name) for c, r, _ in rows if r]
    if not rs:
        return {"geomean": None, "min": None, "min_case": None, "below_1": 0, "n": 0,
                "missing": len(rows)}
    g = math.exp(sum(math.log(r) for r, _ in rs) / len(rs))
    mn, who = min(rs)
    return {"geomean": g, "min": mn, "min_case": who, "below_1": sum(r < 1 for r, _ in rs),
            "n": len(rs), "missing": len(rows) - len(rs)}


def section(results, cases, peers, n, seed):
    """Markdown lines of the random-architecture table and its summary."""
    rows = ratios(results, cases, peers)
    s = summary(rows)
    L = ["### %d random architectures, seed %d (fastbp vs %s)" % (
        n, seed, ", ".join(p for p in peers if p != "fastbp")), ""]
    L.append("Depth 1–5 hidden layers, widths log-uniform 2–1024, batch log-uniform 1–256, "
             "relu/tanh/sigmoid hidden, softmax-CE or MSE (identity output), fp32, plain SGD; "
             "N samples per epoch sized from the model FLOPs (see bench/peers/random_cases.py).")
    L.append("")
    hdr = ["case", "architecture", "batch", "MACs/sample", "N", "fastbp engine"] + \
        list(peers) + ["fastbp ÷ best peer"]
    L.append("| " + " | ".join(hdr) + " |")
    L.append("|" + "|".join(["---"] * 2 + ["---:"] * 3 + ["---"] +
                            ["---:"] * (len(peers) + 1)) + "|")
    for c, r, who in rows:
        fbres = case_result(results, "fastbp", c)
        row = [c.name, arch_label(c), str(c.batch), "{:,}".format(macs_per_sample(c.sizes)),
               "{:,}".format(c.n), fbres.get("engine") or "—"]
        for p in peers:
            cr = case_result(results, p, c)
            if "error" in cr:
                cell = "error"
            else:
                cell = _si(cr.get("samples_per_s"))
                if cr.get("capped"):
                    cell += "¹"
                if cr.get("finite") is False:
                    cell += " (nan!)"
            row.append(cell)
        row.append("%.2f× (vs %s)" % (r, who) if r else "—")
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    if s["geomean"] is not None:
        L.append("**fastbp ÷ best peer over %d random architectures (seed %d): geometric mean "
                 "%.2f×, minimum %.2f× (%s); %d of %d below 1.0×.**" % (
                     s["n"], seed, s["geomean"], s["min"], s["min_case"], s["below_1"], s["n"]))
    if s["missing"]:
        L.append("%d architecture(s) without a ratio (a peer errored, diverged or did not run)."
                 % s["missing"])
    L.append("")
    return L, s
