#!/usr/bin/env bash
# Builds shoal's test image from Debian's busybox-static, so tests never need a registry.
# Output is byte-for-byte reproducible: fixed mtimes, owners and entry order.
set -euo pipefail

usage() {
  echo "usage: $0 [--format oci|docker] [--tag NAME:TAG] OUT.tar" >&2
  exit 2
}

format=oci
tag=shoal-test:latest
out=
while (($#)); do
  case $1 in
    --format) [[ $# -ge 2 ]] || usage; format=$2; shift 2 ;;
    --tag) [[ $# -ge 2 ]] || usage; tag=$2; shift 2 ;;
    -h | --help) usage ;;
    -*) echo "unknown option: $1" >&2; usage ;;
    *) [[ -z $out ]] || usage; out=$1; shift ;;
  esac
done
[[ -n $out ]] || usage
[[ $format == oci || $format == docker ]] || { echo "--format must be oci or docker" >&2; exit 2; }
# The tag is written into JSON unescaped, so allow only what a reference may contain anyway.
[[ $tag =~ ^[a-z0-9][a-z0-9._/-]*(:[0-9]+)?[a-z0-9._/-]*:[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]] ||
  { echo "--tag must look like name:tag, got '$tag'" >&2; exit 2; }

# A dynamically linked busybox would not run in an empty rootfs.
if ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' || [[ ! -x /bin/busybox ]]; then
  echo "busybox-static is not installed (apt-get install busybox-static)" >&2
  exit 1
fi

umask 022
export LC_ALL=C
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar_det=(--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu)

rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,etc,root,tmp,www}
chmod 1777 "$rootfs/tmp"
chmod 700 "$rootfs/root"
install -m 755 /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [[ $applet == busybox ]] || ln -s busybox "$rootfs/bin/$applet"
done
printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$rootfs/etc/passwd"
printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' 'nobody:x:65534:' >"$rootfs/etc/group"
printf '%s\n' '<!doctype html>' '<title>shoal</title>' '<p>hello from shoal-test</p>' >"$rootfs/www/index.html"

layer=$work/layer.tar
tar "${tar_det[@]}" -C "$rootfs" -cf "$layer" bin etc root tmp www
diff_hex=$(sha256sum "$layer" | cut -d' ' -f1)
layer_size=$(stat -c %s "$layer")

arch=$(dpkg --print-architecture)
env_path='PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
config=$work/config.json
printf '{"architecture":"%s","os":"linux","created":"1970-01-01T00:00:00Z","config":{"Env":["%s"],"Cmd":["sh"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"1970-01-01T00:00:00Z","created_by":"deploy/build-test-image.sh"}]}' \
  "$arch" "$env_path" "$diff_hex" >"$config"
config_hex=$(sha256sum "$config" | cut -d' ' -f1)
config_size=$(stat -c %s "$config")

img=$work/image
mkdir -p "$img"
if [[ $format == oci ]]; then
  blobs=$img/blobs/sha256
  mkdir -p "$blobs"
  mv "$layer" "$blobs/$diff_hex"
  mv "$config" "$blobs/$config_hex"
  manifest=$work/manifest.json
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%d}]}' \
    "$config_hex" "$config_size" "$diff_hex" "$layer_size" >"$manifest"
  manifest_hex=$(sha256sum "$manifest" | cut -d' ' -f1)
  manifest_size=$(stat -c %s "$manifest")
  mv "$manifest" "$blobs/$manifest_hex"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$img/oci-layout"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
    "$manifest_hex" "$manifest_size" "$tag" >"$img/index.json"
  members=(blobs index.json oci-layout)
else
  # The legacy `docker save` layout: one directory per layer, the config named by its digest.
  mkdir -p "$img/$diff_hex"
  mv "$layer" "$img/$diff_hex/layer.tar"
  mv "$config" "$img/$config_hex.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$config_hex" "$tag" "$diff_hex" >"$img/manifest.json"
  members=("$config_hex.json" "$diff_hex" manifest.json)
fi

mkdir -p "$(dirname -- "$out")"
tar "${tar_det[@]}" -C "$img" -cf "$out.tmp.$$" "${members[@]}"
mv -f "$out.tmp.$$" "$out"
echo "$out: $format image $tag (id sha256:$config_hex)"
