#!/bin/sh
# The fuzzer's long run: every target (or those named) until 10 million executions or 15 minutes
# each, two at a time, then the table (executions, rate, coverage, corpus, slowest input, heap,
# findings). Findings are written to fuzz/findings/; the exit status is 1 when there are any.
#   sh scripts/fuzz-long.sh [TARGET...]
set -e
cd "$(dirname "$0")/.."
[ -f dist/fuzz/main.js ] || npm run build
exec node dist/fuzz/main.js --execs "${FUZZ_EXECS:-10000000}" --seconds "${FUZZ_SECONDS:-900}" --jobs "${FUZZ_JOBS:-2}" "$@"
