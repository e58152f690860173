#!/usr/bin/env bash
# Undoes deploy/quickstart.sh: stops shoald and etcd, removes every container, mount, cgroup and
# shoal file on this node. Debian packages and the npm build stay.
# A shoald started with other paths is torn down by naming them as it was started:
#   deploy/teardown.sh --data-dir DIR --socket PATH --cgroup-parent NAME --runc-root DIR
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
node dist/src/daemon/teardown.js "$@"
