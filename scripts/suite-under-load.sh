#!/bin/sh
# The whole test suite, RUNS times in a row (3), with LOOPS busy CPU loops (2) competing for the
# CPUs: a suite that passes only on a quiet machine fails here. Root (the lab tests), built first
# (npm run build). Prints each run's result and time; exits non-zero when any run failed.
#   sh scripts/suite-under-load.sh [runs] [loops]
RUNS=${1:-3}
LOOPS=${2:-2}
cd "$(dirname "$0")/.." || exit 1
pids=""
i=0
while [ "$i" -lt "$LOOPS" ]; do
  node -e 'for(;;){}' &
  pids="$pids $!"
  i=$((i + 1))
done
trap 'kill $pids 2>/dev/null' EXIT INT TERM
failed=0
r=1
while [ "$r" -le "$RUNS" ]; do
  start=$(date +%s)
  node scripts/run-tests.js > "/tmp/pathlens-suite-under-load-$r.txt" 2>&1
  rc=$?
  echo "run $r of $RUNS: exit $rc, $(( $(date +%s) - start )) s, $(grep -E '^ℹ (pass|fail)' "/tmp/pathlens-suite-under-load-$r.txt" | tr '\n' ' ')(log: /tmp/pathlens-suite-under-load-$r.txt)"
  [ "$rc" -eq 0 ] || failed=1
  r=$((r + 1))
done
exit $failed
