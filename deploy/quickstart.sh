#!/usr/bin/env bash
# From a fresh machine to a replicated service: installs what shoal needs, starts shoald, makes
# this node a one-node cluster, loads the test image, runs a service, scales it up and down,
# and prints its state. Leaves shoald and the service running; deploy/teardown.sh removes both.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

bash deploy/setup-host.sh
export PATH="$PWD/bin:$PATH"

if ! shoal info >/dev/null 2>&1; then
  echo "== starting shoald (log: /var/log/shoald.log)"
  nohup shoald >>/var/log/shoald.log 2>&1 &
  for _ in $(seq 100); do shoal info >/dev/null 2>&1 && break; sleep 0.1; done
fi
shoal info --format json | grep -q '"manager": true' || { echo "== shoal init"; shoal init; }

echo "== building and loading the test image (busybox from Debian's busybox-static)"
mkdir -p /var/lib/shoal/build
deploy/build-test-image.sh /var/lib/shoal/build/shoal-test.tar
shoal image load /var/lib/shoal/build/shoal-test.tar

if shoal service inspect web >/dev/null 2>&1; then shoal service rm web >/dev/null; sleep 1; fi
echo "== shoal service create --name web --replicas 3 ... shoal-test:latest httpd -f -p 8080"
shoal service create --name web --replicas 3 --limit-memory 64m --limit-pids 100 --limit-cpu 0.5 \
  --env GREETING=hi shoal-test:latest httpd -f -p 8080
echo "== shoal service scale web=10"
shoal service scale web=10
echo "== shoal service scale web=2"
shoal service scale web=2
echo "== shoal service ls"
shoal service ls
echo "== shoal service ps web"
shoal service ps web
echo "== shoal node ls"
shoal node ls
