#!/usr/bin/env bash
# Runs the suite as two vitest processes side by side: the cluster tests, whose hosts are network
# namespaces with paths, cgroups and runc roots of their own, then the e2e files as isolated (see
# vitest.config.mts); and the rest, one file at a time as they share this machine's runc, cgroups
# and mounts. vitest puts every project whose files run one at a time into a single queue, so one
# process would take as long as both halves together.
# With arguments (a file, -t NAME, --project X) it is one plain `vitest run`.
set -uo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
vitest=node_modules/.bin/vitest
(($# == 0)) || exec "$vitest" run "$@"

log=$(mktemp -t shoal-cluster-tests.XXXXXX)
cluster=
stop() {
  [[ -n $cluster ]] && kill -INT "$cluster" 2>/dev/null && wait "$cluster"
  exit 130
}
trap stop INT TERM
trap 'rm -f "$log"' EXIT
echo "cluster tests (then the isolated e2e files) run beside these; their report follows this one"
"$vitest" run --project cluster --project isolated >"$log" 2>&1 &
cluster=$!
"$vitest" run --project node
node_rc=$?
wait "$cluster"
cluster_rc=$?
cluster=
echo
echo "──────── cluster tests, then the isolated e2e files ────────"
cat "$log"
echo "node tests: $( ((node_rc == 0)) && echo passed || echo "FAILED (exit $node_rc)"); cluster tests: $( ((cluster_rc == 0)) && echo passed || echo "FAILED (exit $cluster_rc)")"
((node_rc == 0 && cluster_rc == 0))
