#!/usr/bin/env bash
# A shoal cluster on this one machine: every host is a network namespace with its own address on
# one bridge, running its own shoald (own hostname, data dir, socket, runc root, cgroup parent and
# etcd ports). Run `deploy/cluster.sh help` for the commands. The test helper
# test/helpers/cluster.ts drives the same commands.
set -euo pipefail

ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
DAEMON=$ROOT/dist/src/daemon/main.js
CLI=$ROOT/dist/src/cli/main.js
NODE=${NODE:-node}
DATA_BASE=/var/lib/shoal-cluster
RUN_BASE=/run/shoal-cluster
CLUSTER_PORT=2377
# Every process a host's shoald starts inherits this variable (etcd, conmon, the spawner), which
# is how `down` and `check` find them even after the namespace is gone.
MARKER=SHOAL_CLUSTER_HOST

usage() {
  cat <<'EOF'
usage: deploy/cluster.sh COMMAND [--name NAME] ...

  up [--managers M] [--workers W] [--subnet CIDR] [--no-join] [-- SHOALD_FLAGS...]
                     make the hosts h1..hM (managers) and h(M+1)..h(M+W) (workers), start their
                     shoalds, init h1 and join the others; default 3 managers, 2 workers,
                     10.123.0.0/24 (hN gets the Nth address, the bridge the last)
  down               stop every shoald and etcd, remove containers, mounts, cgroups,
                     namespaces, links and directories; safe to repeat
  status             hosts, their addresses and daemons, and `node ls`
  ls                 the clusters on this machine (a test run that was killed leaves its own)
  shoal HOST ARGS... run the shoal CLI against HOST's daemon (HOST: h1 or 1)
  exec HOST CMD...   run CMD in HOST's network namespace, e.g. exec h2 busybox ping -c1 10.123.0.1
  start HOST         start HOST's shoald again
  kill HOST [--signal SIG] [--etcd]
                     signal HOST's shoald (default SIGTERM) or its etcd member, and wait until it exits
  cut HOST | heal HOST
                     drop (or stop dropping) every packet on HOST's link to the bridge
  check              list anything of the cluster still on this machine; exit 1 if there is any

NAME (default demo) is 1-10 lowercase letters and digits, starting with a letter. Files:
/var/lib/shoal-cluster/NAME/hN (data, shoald.log), /run/shoal-cluster/NAME/hN (socket, runc).
EOF
}

die() {
  echo "cluster.sh: $*" >&2
  exit 1
}

# Exit status 3: the name or the subnet is taken (the test helper then tries others).
taken() {
  echo "cluster.sh: $*" >&2
  exit 3
}

# --- layout: everything of host hN of cluster NAME is named from these two -------------------

netns_of() { echo "$NAME-$1"; }
veth_of() { echo "$NAME-$1"; }
bridge_of() { echo "$NAME-br"; }
data_of() { echo "$DATA_BASE/$NAME/$1"; }
run_of() { echo "$RUN_BASE/$NAME/$1"; }
sock_of() { echo "$RUN_BASE/$NAME/$1/shoal.sock"; }
runc_of() { echo "$RUN_BASE/$NAME/$1/runc"; }
cgroup_of() { echo "shoal-$NAME-$1"; }
hosts_file() { echo "$RUN_BASE/$NAME/hosts"; }
# Ports differ per host, although each host's loopback is its own, so that a member's peer
# address always names its own port.
etcd_client_port_of() { echo $((4379 + 2 * ${1#h})); }
etcd_peer_port_of() { echo $((4380 + 2 * ${1#h})); }

# --- IPv4 arithmetic ----------------------------------------------------------------------------

ip2int() {
  local IFS=. a b c d
  read -r a b c d <<<"$1"
  echo $(((a << 24) | (b << 16) | (c << 8) | d))
}
int2ip() { echo "$((($1 >> 24) & 255)).$((($1 >> 16) & 255)).$((($1 >> 8) & 255)).$(($1 & 255))"; }

# Sets NET (as an integer) and PREFIX from CIDR, or dies naming the rule.
parse_subnet() {
  [[ $1 =~ ^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})/([0-9]{1,2})$ ]] ||
    die "--subnet $1: must be an IPv4 network like 10.123.0.0/24"
  local i
  for i in 1 2 3 4; do ((BASH_REMATCH[i] <= 255)) || die "--subnet $1: each part of the address must be 0-255"; done
  PREFIX=${BASH_REMATCH[5]}
  ((PREFIX >= 8 && PREFIX <= 29)) || die "--subnet $1: the prefix length must be 8-29"
  local addr mask
  addr=$(ip2int "${1%/*}")
  mask=$(((0xffffffff << (32 - PREFIX)) & 0xffffffff))
  NET=$((addr & mask))
  ((NET == addr)) || die "--subnet $1: not a network address; use $(int2ip "$NET")/$PREFIX"
}

# True when a.b.c.d/len overlaps NET/PREFIX.
overlaps() {
  local net len shorter mask
  net=$(ip2int "${1%/*}")
  len=${1#*/}
  [[ $1 == */* ]] || len=32
  shorter=$((len < PREFIX ? len : PREFIX))
  ((shorter > 0)) || return 1
  mask=$(((0xffffffff << (32 - shorter)) & 0xffffffff))
  (((net & mask) == (NET & mask)))
}

# Dies if any address or route of this machine's namespace lies in the subnet: the cluster must
# only ever talk to its own namespaces.
check_subnet_free() {
  local cidr
  while read -r cidr; do
    [[ -n $cidr && $cidr != default ]] || continue
    if overlaps "$cidr"; then taken "--subnet $(int2ip "$NET")/$PREFIX overlaps $cidr, which this machine already uses; choose another"; fi
  done < <(ip -4 -o addr show | awk '{print $4}'; ip -4 route show table all | awk '$1 == "local" || $1 == "broadcast" || $1 == "unreachable" || $1 == "blackhole" || $1 == "prohibit" {print $2; next} {print $1}')
}

# --- hosts ------------------------------------------------------------------------------------

# The hosts of NAME: those in its hosts file, plus any namespace, link or directory a half-made
# `up` left.
known_hosts() {
  {
    [[ -f $(hosts_file) ]] && awk '!/^#/ {print $1}' "$(hosts_file)"
    ip netns list 2>/dev/null | awk '{print $1}' | sed -n "s/^$NAME-\(h[0-9]\+\)$/\1/p"
    ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed -n "s/^$NAME-\(h[0-9]\+\)\(@.*\)\?$/\1/p"
    ls "$DATA_BASE/$NAME" "$RUN_BASE/$NAME" 2>/dev/null | grep -x 'h[0-9]\+'
  } | sort -u -V
}

host_field() { # host column: 2 role, 3 address, 9 hostname
  [[ -f $(hosts_file) ]] || die "no cluster named $NAME (run: deploy/cluster.sh up --name $NAME)"
  awk -v h="$1" -v c="$2" '$1 == h {print $c}' "$(hosts_file)"
}

normalise_host() {
  local h=$1
  [[ -f $(hosts_file) ]] || die "no cluster named $NAME (run: deploy/cluster.sh up --name $NAME)"
  [[ $h =~ ^[0-9]+$ ]] && h=h$h
  [[ $h =~ ^h[0-9]+$ ]] || die "$1: a host is named h1, h2, ... (or 1, 2, ...)"
  [[ -n $(host_field "$h" 1) ]] || die "cluster $NAME has no host $h"
  echo "$h"
}

# Pids of the processes of host h (or of every host, for 'h[0-9]+'): those that carry its marker or
# name its directories (conmon gets a clean environment), and those in its namespace.
host_pids() {
  local h=$1 dirs="($DATA_BASE|$RUN_BASE)/$NAME/$1/"
  {
    grep -lszxE "$MARKER=$NAME-$h" /proc/[0-9]*/environ
    grep -lszE "^$dirs|=$dirs" /proc/[0-9]*/cmdline
  } | sed -n 's|^/proc/\([0-9]*\)/.*|\1|p' | sort -u
  [[ $h =~ ^h[0-9]+$ ]] && ip netns pids "$(netns_of "$h")" 2>/dev/null || true
}

shoald_pid() { # prints the pid of h's running shoald, if there is one
  local f pid
  f=$(run_of "$1")/shoald.pid
  pid=$(cat "$f" 2>/dev/null) || return 0
  grep -qzx "$MARKER=$NAME-$1" "/proc/$pid/environ" 2>/dev/null && echo "$pid"
  return 0
}

# True while pid runs (a zombie, dead but not yet reaped by its parent, does not count).
running() { [[ -e /proc/$1 ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

wait_gone() { # wait_gone SECONDS PID...: true when every pid has exited in time
  local deadline=$((SECONDS + $1)) p alive
  shift
  while :; do
    alive=
    for p in "$@"; do running "$p" && alive=1; done
    [[ -z $alive ]] && return 0
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# nsenter, not `ip netns exec`: that one remounts /sys in a mount namespace of its own, where
# the cgroup tree shoald needs is not mounted.
in_netns() { local h=$1; shift; nsenter --net="/run/netns/$(netns_of "$h")" "$@"; }

start_host() {
  local h=$1 addr args extra
  [[ -n $(shoald_pid "$h") ]] && die "$h: shoald already runs (pid $(shoald_pid "$h"))"
  addr=$(host_field "$h" 3)
  mkdir -p "$(data_of "$h")" "$(run_of "$h")"
  args=(--data-dir "$(data_of "$h")" --socket "$(sock_of "$h")" --runc-root "$(runc_of "$h")"
    --cgroup-parent "$(cgroup_of "$h")" --etcd-client-port "$(etcd_client_port_of "$h")"
    --etcd-peer-port "$(etcd_peer_port_of "$h")" --log-level debug --image-gc-high-percent 0
    --listen-addr "$addr:$CLUSTER_PORT" --hostname "$(host_field "$h" 9)")
  mapfile -t extra <"$RUN_BASE/$NAME/shoald-flags"
  args+=("${extra[@]}")
  # As in_netns, with the marker; setsid: the daemon outlives this script.
  env "$MARKER=$NAME-$h" setsid nsenter --net="/run/netns/$(netns_of "$h")" \
    "$NODE" "$DAEMON" "${args[@]}" >>"$(data_of "$h")/shoald.log" 2>&1 </dev/null 9>&- &
  echo $! >"$(run_of "$h")/shoald.pid"
}

answers() { "$NODE" "$CLI" -H "$(sock_of "$1")" info >/dev/null 2>&1; }

wait_answering() { # wait_answering SECONDS HOST...
  local deadline=$((SECONDS + $1)) h waiting
  shift
  waiting=("$@")
  while ((${#waiting[@]})); do
    local still=()
    for h in "${waiting[@]}"; do
      answers "$h" && continue
      if [[ -z $(shoald_pid "$h") ]]; then
        tail -n 20 "$(data_of "$h")/shoald.log" >&2 || true
        die "$h: shoald exited during start-up (log above: $(data_of "$h")/shoald.log)"
      fi
      still+=("$h")
    done
    waiting=("${still[@]}")
    ((${#waiting[@]})) || break
    ((SECONDS < deadline)) || die "${waiting[*]}: shoald does not answer on its socket (logs: $(data_of "${waiting[0]}")/shoald.log)"
    sleep 0.2
  done
}

shoal_on() { local h=$1; shift; "$NODE" "$CLI" -H "$(sock_of "$h")" "$@"; }

join_host() { # join_host HOST TOKEN MANAGER_ADDRESS
  shoal_on "$1" join --token "$2" --advertise-addr "$(host_field "$1" 3)" "$3:$CLUSTER_PORT"
}

# --- commands -------------------------------------------------------------------------------

cmd_up() {
  local managers=3 workers=2 subnet=10.123.0.0/24 join=1 flags=()
  while (($#)); do
    case $1 in
      --managers) managers=${2:?--managers needs a number}; shift 2 ;;
      --workers) workers=${2:?--workers needs a number}; shift 2 ;;
      --subnet) subnet=${2:?--subnet needs a CIDR}; shift 2 ;;
      --no-join) join=; shift ;;
      --) shift; flags=("$@"); break ;;
      *) die "up: unknown argument $1 (see deploy/cluster.sh help)" ;;
    esac
  done
  [[ $managers =~ ^[0-9]+$ ]] && ((managers >= 1)) || die "--managers $managers: must be a whole number, at least 1"
  [[ $workers =~ ^[0-9]+$ ]] || die "--workers $workers: must be a whole number, 0 or more"
  local total=$((managers + workers))
  ((total <= 99)) || die "--managers plus --workers must be at most 99"
  parse_subnet "$subnet"
  ((total + 3 <= 1 << (32 - PREFIX))) || die "--subnet $subnet holds too few addresses for $total hosts and the bridge"
  [[ -f $DAEMON && -f $CLI ]] || die "$ROOT/dist is missing: run deploy/setup-host.sh first"
  [[ $(id -u) == 0 ]] || die "must run as root: it makes network namespaces, links and cgroups"

  local bridge_addr h i l role
  mkdir -p "$RUN_BASE" "$DATA_BASE"
  # From the claim on, a failure leaves what was made so far (with the daemons' logs) for `down`.
  trap 'if (($? != 0)) && [[ -e $RUN_BASE/$NAME/hosts ]]; then echo "cluster.sh: up failed; \`deploy/cluster.sh down --name $NAME\` removes what it made" >&2; fi' EXIT
  # One `up` at a time claims its name and subnet, so two clusters never get the same ones.
  exec 9>"$RUN_BASE/.lock"
  flock 9
  [[ -e $RUN_BASE/$NAME || -e $DATA_BASE/$NAME ]] && taken "a cluster named $NAME exists; run: deploy/cluster.sh down --name $NAME"
  for l in "$(bridge_of)" $(for ((i = 1; i <= total; i++)); do veth_of "h$i"; done); do
    ip link show "$l" >/dev/null 2>&1 && taken "a link named $l exists already; choose another --name"
  done
  for ((i = 1; i <= total; i++)); do
    [[ -e /run/netns/$(netns_of "h$i") ]] && taken "a network namespace named $(netns_of "h$i") exists already; choose another --name"
  done
  check_subnet_free
  bridge_addr=$(int2ip $((NET + (1 << (32 - PREFIX)) - 2)))
  mkdir -p "$RUN_BASE/$NAME"
  ((${#flags[@]} == 0)) || printf '%s\n' "${flags[@]}" >"$RUN_BASE/$NAME/shoald-flags"
  touch "$RUN_BASE/$NAME/shoald-flags"
  {
    printf '# subnet:\t%s/%s\tbridge %s %s\n' "$(int2ip "$NET")" "$PREFIX" "$(bridge_of)" "$bridge_addr"
    printf '# host\trole\taddress\tnetns\tsocket\tdata_dir\trunc_root\tcgroup_parent\thostname\n'
    for ((i = 1; i <= total; i++)); do
      h=h$i
      role=worker
      ((i <= managers)) && role=manager
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$h" "$role" "$(int2ip $((NET + i)))" "$(netns_of "$h")" \
        "$(sock_of "$h")" "$(data_of "$h")" "$(runc_of "$h")" "$(cgroup_of "$h")" "$h"
    done
  } >"$(hosts_file)"
  # The bridge has an address too, so that this machine can reach the hosts (a remote CLI with
  # -H tcp://, a registry the hosts pull from); nothing routes beyond the subnet.
  ip link add "$(bridge_of)" type bridge
  ip addr add "$bridge_addr/$PREFIX" dev "$(bridge_of)"
  ip link set "$(bridge_of)" up
  for ((i = 1; i <= total; i++)); do
    h=h$i
    ip netns add "$(netns_of "$h")"
    ip link add "$(veth_of "$h")" type veth peer name eth0 netns "$(netns_of "$h")"
    ip link set "$(veth_of "$h")" master "$(bridge_of)" up
    ip -n "$(netns_of "$h")" link set lo up
    ip -n "$(netns_of "$h")" addr add "$(int2ip $((NET + i)))/$PREFIX" dev eth0
    ip -n "$(netns_of "$h")" link set eth0 up
  done
  exec 9>&-

  for ((i = 1; i <= total; i++)); do start_host "h$i"; done
  local all=()
  for ((i = 1; i <= total; i++)); do all+=("h$i"); done
  wait_answering 120 "${all[@]}"
  echo "hosts up: ${all[*]} on $(int2ip "$NET")/$PREFIX (bridge $(bridge_of) $bridge_addr)"
  [[ -n $join ]] || return 0

  local h1addr mtoken wtoken p joins=()
  h1addr=$(host_field h1 3)
  shoal_on h1 init --advertise-addr "$h1addr"
  mtoken=$(shoal_on h1 join-token -q manager)
  wtoken=$(shoal_on h1 join-token -q worker)
  # Managers one at a time: each becomes a voting etcd member once it has caught up, and etcd
  # takes one learner at a time. Workers all at once.
  for ((i = 2; i <= managers; i++)); do join_host "h$i" "$mtoken" "$h1addr"; done
  for ((i = managers + 1; i <= total; i++)); do
    join_host "h$i" "$wtoken" "$h1addr" &
    joins+=($!)
  done
  for p in "${joins[@]}"; do wait "$p" || die "a worker could not join (its error is above)"; done
  shoal_on h1 node ls
}

# Leaves nothing of host h: processes, containers, mounts, cgroups, namespace, link, files.
remove_host() {
  local h=$1 runc_root id p cg pids
  runc_root=$(runc_of "$h")
  mapfile -t pids < <(host_pids "$h")
  ((${#pids[@]} == 0)) || kill -KILL "${pids[@]}" 2>/dev/null || true
  wait_gone 10 "${pids[@]}" || echo "$h: processes ${pids[*]} outlived SIGKILL" >&2
  if [[ -d $runc_root ]]; then
    for id in $({ runc --root "$runc_root" list -q 2>/dev/null; ls "$runc_root"; } | sort -u); do
      runc --root "$runc_root" delete -f "$id" >/dev/null 2>&1 || true
    done
  fi
  # Whatever still runs in the host's cgroups (a `runc init` that runc no longer lists).
  for cg in /sys/fs/cgroup/"$(cgroup_of "$h")" /sys/fs/cgroup/*/"$(cgroup_of "$h")"; do
    [[ -d $cg ]] || continue
    for p in $(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
  done
  # Deepest first, so a rootfs goes before anything mounted under it.
  awk '{print $2}' /proc/mounts | { grep -E "^($(data_of "$h")|$(run_of "$h"))/" || true; } | sort -r | while read -r p; do
    umount "$p" 2>/dev/null || umount -l "$p" 2>/dev/null || echo "$h: cannot unmount $p" >&2
  done
  for cg in /sys/fs/cgroup/"$(cgroup_of "$h")" /sys/fs/cgroup/*/"$(cgroup_of "$h")"; do
    [[ -d $cg ]] || continue
    for ((p = 0; p < 50; p++)); do
      find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
      [[ -d $cg ]] || break
      sleep 0.1
    done
  done
  ip netns del "$(netns_of "$h")" 2>/dev/null || true
  ip link del "$(veth_of "$h")" 2>/dev/null || true
  rm -rf "$(data_of "$h")" "$(run_of "$h")"
}

cmd_down() {
  (($# == 0)) || die "down: unknown argument $1"
  local hosts h pid pids=()
  mapfile -t hosts < <(known_hosts)
  if ((${#hosts[@]} == 0)) && [[ ! -e $RUN_BASE/$NAME && ! -e $DATA_BASE/$NAME ]] && ! ip link show "$(bridge_of)" >/dev/null 2>&1; then
    echo "no cluster named $NAME is on this machine"
    return 0
  fi
  # A clean stop first (shoald stops its etcd member); what does not stop in time is killed.
  for h in "${hosts[@]}"; do
    pid=$(shoald_pid "$h")
    [[ -n $pid ]] || continue
    kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
  done
  if ((${#pids[@]})) && ! wait_gone 15 "${pids[@]}"; then
    for h in "${hosts[@]}"; do
      pid=$(shoald_pid "$h")
      [[ -n $pid ]] && running "$pid" && echo "$h: shoald (pid $pid) did not stop within 15s of SIGTERM; killing it" >&2
    done
  fi
  for h in "${hosts[@]}"; do remove_host "$h" & done
  wait
  ip link del "$(bridge_of)" 2>/dev/null || true
  rm -rf "${RUN_BASE:?}/$NAME" "${DATA_BASE:?}/$NAME"
  rmdir "$DATA_BASE" 2>/dev/null || true
  # The last cluster gone takes the claim lock with it, under the lock so no `up` is claiming now.
  (
    flock 9
    [[ -z $(ls -A "$RUN_BASE" | grep -vx .lock) ]] && rm -f "$RUN_BASE/.lock" && rmdir "$RUN_BASE"
  ) 2>/dev/null 9>>"$RUN_BASE/.lock" || true
  cmd_check >&2 || die "cluster $NAME: the above is left"
  echo "cluster $NAME removed"
}

# Lists what is left of cluster NAME on this machine; false when anything is.
cmd_check() {
  local left=() h l
  for l in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$NAME-h[0-9]+$"); do left+=("netns $l"); done
  for l in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E "^$NAME-(h[0-9]+|br)$"); do left+=("link $l"); done
  for l in $(awk '{print $2}' /proc/mounts | grep -E "^($DATA_BASE/$NAME|$RUN_BASE/$NAME)/|^/run/netns/$NAME-h[0-9]+$"); do left+=("mount $l"); done
  for l in $(find /sys/fs/cgroup -maxdepth 2 -name "shoal-$NAME-h*" 2>/dev/null); do left+=("cgroup $l"); done
  for l in $(host_pids 'h[0-9]+'); do left+=("process $l $(tr '\0' ' ' <"/proc/$l/cmdline" 2>/dev/null | cut -c1-100 | sed 's/ *$//')"); done
  for l in "$RUN_BASE/$NAME"/h*/runc/*; do [[ -e $l ]] && left+=("runc state $l"); done
  for l in "$DATA_BASE/$NAME" "$RUN_BASE/$NAME"; do [[ -e $l ]] && left+=("directory $l"); done
  ((${#left[@]} == 0)) && return 0
  printf '%s\n' "${left[@]}"
  return 1
}

cmd_status() {
  (($# == 0)) || die "status: unknown argument $1"
  [[ -f $(hosts_file) ]] || die "no cluster named $NAME"
  local h role addr pid link first=
  printf '%-5s %-8s %-16s %-16s %s\n' HOST ROLE ADDRESS SHOALD LINK
  while IFS=$'\t' read -r h role addr _; do
    pid=$(shoald_pid "$h")
    pid=${pid:+pid $pid}
    link=up
    [[ -e /run/netns/$(netns_of "$h") ]] || link=missing
    in_netns "$h" nft list table inet shoal-cut >/dev/null 2>&1 && link=cut
    printf '%-5s %-8s %-16s %-16s %s\n' "$h" "$role" "$addr" "${pid:-stopped}" "$link"
    [[ -z $first && $role == manager && -n $pid ]] && answers "$h" && first=$h
  done < <(grep -v '^#' "$(hosts_file)")
  [[ -n $first ]] && { echo; shoal_on "$first" node ls || true; }
  return 0
}

cmd_ls() {
  (($# == 0)) || die "ls: unknown argument $1"
  ls "$RUN_BASE" "$DATA_BASE" 2>/dev/null | grep -xE '[a-z][a-z0-9]{0,9}' | sort -u || true
}

cmd_kill() {
  local h signal=TERM etcd= pids p
  h=$(normalise_host "${1:?kill: which host?}")
  shift
  while (($#)); do
    case $1 in
      --signal) signal=${2:?--signal needs a signal}; shift 2 ;;
      --etcd) etcd=1; shift ;;
      *) die "kill: unknown argument $1" ;;
    esac
  done
  if [[ -n $etcd ]]; then
    pids=()
    for p in $(host_pids "$h"); do [[ $(cat "/proc/$p/comm" 2>/dev/null) == etcd ]] && pids+=("$p"); done
  else
    pids=($(shoald_pid "$h"))
  fi
  ((${#pids[@]})) || die "$h: no ${etcd:+etcd member}${etcd:-shoald} is running"
  kill "-$signal" "${pids[@]}"
  wait_gone 30 "${pids[@]}" || die "$h: pid ${pids[*]} did not exit within 30s of SIG$signal"
}

# An nftables table inside the host's own namespace drops everything on its link: a silent
# partition (no resets, no unreachable errors), as when a cable or a switch fails.
cmd_cut() {
  local h
  h=$(normalise_host "${1:?cut: which host?}")
  in_netns "$h" nft -f - <<'EOF'
table inet shoal-cut {
  chain input { type filter hook input priority -300; policy accept; iifname "eth0" drop; }
  chain output { type filter hook output priority -300; policy accept; oifname "eth0" drop; }
}
EOF
}

cmd_heal() {
  local h
  h=$(normalise_host "${1:?heal: which host?}")
  in_netns "$h" nft delete table inet shoal-cut 2>/dev/null || true
}

# --- main -----------------------------------------------------------------------------------

COMMAND=${1:-help}
(($#)) && shift
NAME=demo
ARGS=()
while (($#)); do
  # After the host of `shoal` and `exec`, everything belongs to the command run.
  if [[ $COMMAND == shoal || $COMMAND == exec ]] && ((${#ARGS[@]} >= 1)); then ARGS+=("$@"); break; fi
  case $1 in
    --name) NAME=${2:?--name needs a name}; shift 2 ;;
    --name=*) NAME=${1#--name=}; shift ;;
    --) ARGS+=("$@"); break ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
[[ $NAME =~ ^[a-z][a-z0-9]{0,9}$ ]] || die "--name $NAME: use 1-10 lowercase letters and digits, starting with a letter"

case $COMMAND in
  up) cmd_up "${ARGS[@]}" ;;
  down) cmd_down "${ARGS[@]}" ;;
  status) cmd_status "${ARGS[@]}" ;;
  check) cmd_check "${ARGS[@]}" ;;
  ls) cmd_ls "${ARGS[@]}" ;;
  shoal)
    host=$(normalise_host "${ARGS[0]:?shoal: which host?}")
    exec "$NODE" "$CLI" -H "$(sock_of "$host")" "${ARGS[@]:1}"
    ;;
  exec)
    host=$(normalise_host "${ARGS[0]:?exec: which host?}")
    (("${#ARGS[@]}" > 1)) || die "exec: which command?"
    in_netns "$host" "${ARGS[@]:1}"
    ;;
  start)
    host=$(normalise_host "${ARGS[0]:?start: which host?}")
    start_host "$host"
    wait_answering 120 "$host"
    ;;
  kill) cmd_kill "${ARGS[@]}" ;;
  cut) cmd_cut "${ARGS[@]}" ;;
  heal) cmd_heal "${ARGS[@]}" ;;
  help | -h | --help) usage ;;
  *) usage >&2; exit 2 ;;
esac
