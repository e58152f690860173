#!/usr/bin/env bash
# Undoes deploy/quickstart.sh: stops shoald and etcd, removes every container, mount, cgroup and
# shoal file on this node. Debian packages and the npm build stay.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
node dist/src/daemon/teardown.js "$@"
