#!/bin/sh
# Smoke test of perf/gossip-bench: a tiny wisp-only run (3 nodes, 1 s
# windows, one run of an open-loop and a closed-loop scenario) must exit 0
# and print well-formed rows. No figure is checked: this machine's speed is
# not the test's business.
# usage: gossip_bench_smoke.sh PATH/TO/gossip-bench
set -eu
bench=$1
out=$(mktemp)
trap 'rm -f "$out"' EXIT

"$bench" --help | grep -q -- '--scenarios' || { echo "FAIL: --help does not explain --scenarios"; exit 1; }
"$bench" --nodes 3 --degree 1 --bogus >/dev/null 2>&1 && { echo "FAIL: a bad option was accepted"; exit 1; }

"$bench" --skip-js --nodes 3 --degree 1 --warmup 0.5 --duration 1 --drain 5 --runs 1 \
	--scenarios 1K:strict:20,2K:none:max/4 >"$out" || { cat "$out"; echo "FAIL: exit status $?"; exit 1; }

fail() {
	cat "$out"
	echo "FAIL: $*"
	exit 1
}
# every line is a row or commentary
bad=$(grep -v -e '^bench=gossip-bench ' -e '^#' "$out" || true)
[ -z "$bad" ] || fail "lines that are neither rows nor commentary: $bad"
# every row ends with the machine
bad=$(grep '^bench=' "$out" | grep -v -E ' machine=[^ ]+ cpus=[0-9]+$' || true)
[ -z "$bad" ] || fail "rows without machine= cpus=: $bad"
for name in machine config js_skipped elapsed; do
	grep -q "^bench=gossip-bench name=$name " "$out" || fail "no name=$name row"
done
for sc in 1K-strict-20 2K-none-max4; do
	grep -q "^bench=gossip-bench name=scenario scenario=$sc " "$out" || fail "no scenario row for $sc"
	for m in delivered_per_s pub_per_s lat_p50_us lat_p99_us lat_p999_us cpu_us_per_delivery cpu_cores \
		dup_per_delivery rss_kib_per_node hwm_kib_per_node missing bench_cpu_share; do
		grep -q -E "^bench=gossip-bench impl=wisp scenario=$sc name=$m unit=[^ ]+ min=[0-9.e+-]+ median=[0-9.e+-]+ max=[0-9.e+-]+ runs=1 " "$out" ||
			fail "no well-formed $m row for $sc"
	done
done
grep -q '^bench=gossip-bench impl=js' "$out" && fail "js rows despite --skip-js"
grep -q 'failures=0 ' "$out" || fail "failed runs"
echo "ok: $(grep -c '^bench=' "$out") rows"
