#!/usr/bin/env bash
# The kernel and sysctl checklist of a shoal host, run by deploy/setup-host.sh (after the build)
# and on its own. Each kernel feature is tried for real, in a network namespace of its own that
# vanishes with the probe (nothing of this host's networking is touched); a missing module is
# loaded with modprobe once and tried again. Limits that are safe to raise are raised now and
# kept in /etc/sysctl.d/90-shoal.conf. Silent when all is well; one line per problem on stderr
# otherwise, and exit status 1 (setup-host.sh goes on: a host without, say, VXLAN still runs
# services that join no network).
#
# Not checked, because shoal does not need them today:
# - net.ipv4.ip_forward: containers on an overlay reach each other by bridging (veth -> bridge ->
#   VXLAN), and VIPs are DNATed inside each container's namespace, so the host never routes
#   between interfaces. (NAT to the outside and the routing mesh, when they come, will.)
# - br_netfilter / net.bridge.bridge-nf-call-iptables: either way works. When it is on (Docker
#   turns it on and sets FORWARD to DROP), shoal accepts traffic between its own bridges with an
#   iptables rule of its own (src/network/forward.ts).
set -uo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

problems=0
problem() {
  echo "shoal host check: $*" >&2
  problems=$((problems + 1))
}

# The line of a command's output that says what failed: the first that mentions an error, else the last.
why() { grep -m1 "Error:" <<<"$1" || tail -n1 <<<"$1"; }

# probe NAME MODULES... -- COMMAND...: runs COMMAND; if it fails, modprobes MODULES and runs it again.
probe() {
  local name=$1 mods=() out
  shift
  while [[ $1 != -- ]]; do mods+=("$1"); shift; done
  shift
  "$@" >/dev/null 2>&1 && return 0
  modprobe -a "${mods[@]}" >/dev/null 2>&1
  out=$("$@" 2>&1) && return 0
  problem "$name: $(why "$out") (kernel modules: ${mods[*]})"
}

# --- kernel features, each tried in a throwaway network namespace ----------------------------

in_new_netns() { unshare --net -- "$@"; }

# Image layers are stacked with overlayfs; the filesystem list is enough (a mount needs a layer).
probe "overlayfs, for container root filesystems, is missing" overlay -- grep -qw overlay /proc/filesystems

# What src/network/overlay.ts makes for an overlay network on a node.
probe "cannot make a veth pair, for containers on overlay networks" veth -- \
  in_new_netns ip link add shoalprobe0 type veth peer name shoalprobe1
probe "cannot make a bridge, for overlay networks" bridge -- \
  in_new_netns ip link add shoalprobe type bridge
probe "cannot make a VXLAN device, for overlay networks across nodes" vxlan -- \
  in_new_netns ip link add shoalprobe type vxlan id 4096 dstport 4789 nolearning proxy

# The VIP table exactly as src/network/vip.ts writes it (verdict maps, numgen, dnat, reject; the
# DNS redirect of src/network/dns-listeners.ts needs no more than its nat hook and dnat).
vip_ruleset() {
  node -e '
    const { vipRuleset } = require("./dist/src/network/vip");
    process.stdout.write(vipRuleset("shoalprobe", [{ vip: "10.0.0.2", protocol: "tcp", port: 80,
      endpoints: [{ ip: "10.0.0.3", port: 8080 }, { ip: "10.0.0.4", port: 8080 }] },
      { vip: "10.0.0.5", protocol: "udp", port: 0, endpoints: [] }]));'
}
load_vip_table() { in_new_netns nft -f - <<<"$ruleset"; }
if ruleset=$(vip_ruleset 2>&1); then
  probe "nftables cannot load shoal's VIP table, for service VIPs" nf_tables nft_nat nft_chain_nat nf_nat nft_numgen nft_reject_inet nft_reject nf_conntrack -- \
    load_vip_table
else
  problem "cannot write the VIP table to try it (is dist/ built?): $(why "$ruleset")"
fi

# --- cgroup controllers ---------------------------------------------------------------------

# Mounted hierarchies from /proc/self/mountinfo: "v1 <controllers>" or "v2 <mount point>".
hierarchies() {
  awk '{ for (i = 7; $i != "-"; i++); fs = $(i + 1); if (fs == "cgroup") print "v1", $(i + 3); else if (fs == "cgroup2") print "v2", $5 }' /proc/self/mountinfo
}
controller_available() {
  local kind arg
  while read -r kind arg; do
    if [[ $kind == v1 && ,$arg, == *,$1,* ]]; then return 0; fi
    if [[ $kind == v2 ]] && grep -qw "$1" "$arg/cgroup.controllers" 2>/dev/null; then return 0; fi
  done < <(hierarchies)
  return 1
}
for c in memory cpu pids; do
  controller_available "$c" ||
    problem "the $c cgroup controller is neither mounted (v1) nor enabled at the root of the unified hierarchy (v2): --limit-$c cannot be enforced (is cgroup_disable=$c on the kernel command line?)"
done

# --- sysctls: raised when lower, never lowered ---------------------------------------------

# Containers run without a user namespace, so every inotify user in every container counts
# against root's limits, shared with shoald and the host; 128 instances (the kernel's default)
# run out on a node with a few dozen containers. The values are the ones Kubernetes nodes use.
SYSCTL_FILE=/etc/sysctl.d/90-shoal.conf
declare -A WANT=([fs.inotify.max_user_instances]=8192 [fs.inotify.max_user_watches]=524288)
conf=$'# Written by shoal\'s deploy/check-host.sh: limits a node with many containers needs.\n'
for key in $(printf '%s\n' "${!WANT[@]}" | sort); do
  want=${WANT[$key]}
  have=$(sysctl -n "$key" 2>/dev/null) || { problem "sysctl $key cannot be read"; continue; }
  ((have >= want)) && want=$have
  conf+="$key = $want"$'\n'
  if ((have < want)) && ! sysctl -qw "$key=$want" >/dev/null 2>&1; then
    problem "sysctl $key is $have and cannot be raised to $want"
  fi
done
if [[ -d /etc/sysctl.d && $(cat "$SYSCTL_FILE" 2>/dev/null) != "${conf%$'\n'}" ]]; then
  printf '%s' "$conf" >"$SYSCTL_FILE" || problem "cannot write $SYSCTL_FILE"
fi

if ((problems)); then
  echo "shoal host check: $problems problem(s) above; shoal runs, but what they name will fail" >&2
  exit 1
fi
