#!/usr/bin/env bash
# Runs the test suite with its temp directory on a disk that is already PERCENT full, to prove the
# tests do not depend on the host's free space (image collection in the daemon must not take a
# test's images, and nothing else may need room the host happens to have).
#
#   bash test/full-disk.sh [PERCENT] [vitest args...]     e.g. bash test/full-disk.sh 90 --sequence.shuffle
#
# The disk is an ext4 image on a loop device, made and removed by this script even on failure.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
percent=${1:-90}
shift || true
[[ $percent =~ ^[0-9]+$ ]] && ((percent < 100)) || { echo "usage: $0 [PERCENT 0-99] [vitest args...]" >&2; exit 2; }
size_mib=${SHOAL_FULL_DISK_MIB:-8192}
work=$(mktemp -d /var/tmp/shoal-full-disk.XXXXXX)
mnt=$work/mnt
cleanup() {
  umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir "$mnt"
truncate -s "${size_mib}M" "$work/disk.img"
mkfs.ext4 -q -F -m 0 "$work/disk.img"
mount -o loop "$work/disk.img" "$mnt"
read -r blocks avail < <(stat -f -c '%b %a' "$mnt")
bsize=$(stat -f -c '%S' "$mnt")
fill=$(((blocks * percent / 100 - (blocks - avail)) * bsize))
((fill > 0)) && fallocate -l "$fill" "$mnt/filler"
mkdir -m 1777 "$mnt/tmp"
df -h "$mnt" | tail -1 | awk '{print "temp disk: " $2 " size, " $5 " used"}'
TMPDIR=$mnt/tmp npx vitest run "$@"
