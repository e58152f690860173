#!/usr/bin/env bash
# Prepares this machine for shoal: Debian packages, npm dependencies, the compiled daemon and
# CLI, and the kernel and sysctl checklist (deploy/check-host.sh). Idempotent: a second run only
# checks and returns.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

# etcd-server: the raft engine each manager supervises; etcd-client: etcdctl, which takes and
# restores snapshots (shoal swarm backup / restore); runc + conmon: the OCI runtime and its
# monitor; busybox-static: the test image; attr: setfattr for overlay opaque whiteouts;
# iproute2, nftables, iptables: networking; docker-registry, skopeo: registry tests (perl: bcrypt
# htpasswd entries through libcrypt for the registry auth test; openssl: the key and certificate of
# the bearer-token test's token server).
PACKAGES=(etcd-server etcd-client runc conmon busybox-static attr iproute2 nftables iptables tar coreutils util-linux docker-registry skopeo perl openssl)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-host.sh must run as root (it installs packages, and shoal needs root for namespaces and cgroups)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's etcd-server package enables a system-wide etcd on port 2379 where systemd runs;
# shoal supervises its own member on other ports, so that one is left alone.

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi

if [ ! -f dist/src/daemon/main.js ] || [ -n "$(find src proto -newer dist/src/daemon/main.js -print -quit)" ]; then
  echo "building shoal"
  npm run --silent build
fi

ln -sf "$PWD/bin/shoal" /usr/local/bin/shoal
ln -sf "$PWD/bin/shoald" /usr/local/bin/shoald

# Kernel features, cgroup controllers and sysctls (silent when all is well). What it reports stops
# only the features it names, so setup goes on.
bash deploy/check-host.sh || true
