#!/bin/sh
# Smoke test of perf/reqresp-bench: a tiny run must exit 0 and print
# well-formed rows for every metric. No figure is checked: this machine's
# speed is not the test's business.
# usage: reqresp_bench_smoke.sh PATH/TO/reqresp-bench
set -eu
bench=$1
out=$(mktemp)
trap 'rm -f "$out"' EXIT

"$bench" --help | grep -q -- '--sync-bytes' || { echo "FAIL: --help does not explain --sync-bytes"; exit 1; }
"$bench" --runs 0 >/dev/null 2>&1 && { echo "FAIL: --runs 0 was accepted"; exit 1; }

"$bench" --runs 1 --rtt 50 --requests 200 --inflight 8 --stream-bytes 4M --sync-bytes 8M >"$out" ||
	{ cat "$out"; echo "FAIL: exit status $?"; exit 1; }

fail() {
	cat "$out"
	echo "FAIL: $*"
	exit 1
}
bad=$(grep -v -e '^bench=reqresp-bench ' -e '^#' "$out" || true)
[ -z "$bad" ] || fail "lines that are neither rows nor commentary: $bad"
bad=$(grep '^bench=' "$out" | grep -v -E ' machine=[^ ]+ cpus=[0-9]+$' || true)
[ -z "$bad" ] || fail "rows without machine= cpus=: $bad"
for name in machine config stream rtt_p50 rtt_p99 rtt_rate requests sync_1_peer sync_4_peers ratio stats; do
	grep -q "^bench=reqresp-bench name=$name " "$out" || fail "no name=$name row"
done
# every metric measured in its one run
bad=$(grep -E '^bench=reqresp-bench name=[a-z0-9_]+ unit=' "$out" | grep -v ' failed=0 ' || true)
[ -z "$bad" ] || fail "a metric failed: $bad"
grep -q 'end_failures=0 ' "$out" || fail "requests ended in failure"
echo "PASS"
