#!/usr/bin/env bash
# Does `asv continuous` catch a real slowdown, and stay quiet without one?
#
#   bench/check_regression_detection.sh [BENCHMARK_REGEX]
#
# In a fresh clone (a temporary folder) of this repository's HEAD commit (commit
# your changes first), two throw-away commits are made on top of HEAD:
#
#   same  an empty commit: the same code as HEAD;
#   slow  fastbp/training.py sleeps SLOWDOWN (default 1.0) times the measured
#         epoch time after every compiled epoch call, so each epoch of
#         MLP.fit takes (1 + SLOWDOWN) times as long (default: twice).
#
# and asv (the project's asv.conf.json: a virtualenv, each commit's wheel
# installed in turn) runs one benchmark on each pair:
#
#   asv continuous -b REGEX HEAD same   expected: exit 0, no "PERFORMANCE DECREASED"
#   asv continuous -b REGEX HEAD slow   expected: exit 1, "PERFORMANCE DECREASED"
#
# The default REGEX is one parameter set of the epoch benchmark,
# bench_training.Epoch.time_epoch('float32', 'digits-b32').  Exit status 0 when
# both expectations hold, 1 otherwise.  Full logs are kept in $OUT (default: a
# new temporary folder, printed at the end); KEEP=1 keeps the clone too.
# Needs asv and virtualenv (`pip install asv virtualenv`) and PyPI, or a pip
# cache, for the environment's numpy / numba / scipy / threadpoolctl.  It
# compiles fastbp's kernels once per commit: several minutes.
set -uo pipefail

regex="${1:-bench_training.Epoch.time_epoch\('float32', 'digits-b32'\)}"
slowdown="${SLOWDOWN:-1.0}"
asv="${ASV:-asv}"
root="$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)"
head="$(git -C "$root" rev-parse HEAD)"
OUT="${OUT:-$(mktemp -d -t fastbp-regression-check-XXXXXX)}"
mkdir -p "$OUT"
clone="$(mktemp -d -t fastbp-asv-clone-XXXXXX)"
cleanup() { [ "${KEEP:-0}" = 1 ] || rm -rf "$clone"; }
trap cleanup EXIT

say() { printf '\n=== %s\n' "$*"; }

say "fresh clone of $root at $head in $clone"
git clone -q "$root" "$clone" && cd "$clone" || exit 1
git checkout -q -b regression-check "$head" || exit 1
git -c user.name=check -c user.email=check@invalid commit -q --allow-empty \
    -m "throw-away: no change"
same="$(git rev-parse HEAD)"
git checkout -q -b regression-check-slow "$head"
python3 - "$slowdown" <<'EOF' || exit 1
import re, sys
path = "fastbp/training.py"
src = open(path).read()
line = re.compile(r"^( *)dt = time\.perf_counter\(\) - t0\n", re.M)
hits = line.findall(src)
if len(hits) != 1:
    sys.exit("cannot plant the slowdown: %d lines 'dt = time.perf_counter() - t0' "
             "in %s (expected 1)" % (len(hits), path))
src = line.sub(lambda m: m.group(0) + m.group(1) + "time.sleep(%s * dt)  # planted slowdown\n"
               % sys.argv[1], src)
open(path, "w").write(src)
EOF
git diff
git -c user.name=check -c user.email=check@invalid commit -q -am \
    "throw-away: planted slowdown (sleep ${slowdown} x epoch time)"
slow="$(git rev-parse HEAD)"
git log --oneline -3 --all --graph

[ -f "$HOME/.asv-machine.json" ] || "$asv" machine --yes >/dev/null

run() {  # name base head
    say "asv continuous -b \"$regex\" $2 $3   ($1)"
    "$asv" continuous --show-stderr -b "$regex" "$2" "$3" >"$OUT/$1.log" 2>&1
    local rc=$?
    grep -v '^ *\(Collecting\|Downloading\|Using cached\|Requirement already\|Link requires\)' \
        "$OUT/$1.log" | tail -25
    echo "exit status: $rc"
    return $rc
}

run identical "$head" "$same"; rc_same=$?
run slowdown "$head" "$slow"; rc_slow=$?

say "summary"
ok=1
if [ $rc_same -eq 0 ] && ! grep -q "PERFORMANCE DECREASED" "$OUT/identical.log"; then
    echo "identical commits: exit $rc_same, no 'PERFORMANCE DECREASED'   (as expected)"
else
    echo "identical commits: exit $rc_same$(grep -o 'PERFORMANCE DECREASED' "$OUT/identical.log" | sed 's/^/, /')   (UNEXPECTED)"
    ok=0
fi
if [ $rc_slow -eq 1 ] && grep -q "PERFORMANCE DECREASED" "$OUT/slowdown.log"; then
    echo "planted slowdown: exit $rc_slow, $(grep -o 'PERFORMANCE DECREASED.' "$OUT/slowdown.log")   (as expected)"
else
    echo "planted slowdown: exit $rc_slow, no 'PERFORMANCE DECREASED'   (UNEXPECTED)"
    ok=0
fi
echo "logs: $OUT"
[ $ok = 1 ]
