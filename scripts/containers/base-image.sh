#!/usr/bin/env bash
# The local Debian base image: no registry is reachable, so debootstrap a minbase bookworm
# from the Debian mirror apt already uses, import it, and tag it as the official name so
# `FROM debian:bookworm` (and python/postgres stand-ins built on it) resolve locally.
# The rootfs tarball is cached in .cache/containers/; a warm run is a few milliseconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/containers/env.sh
image=localhost/debian:bookworm
if podman image exists "$image" && podman image exists docker.io/library/debian:bookworm; then
  exit 0
fi
tarball="$MARKETPIPE_CONTAINERS/debian-bookworm-rootfs.tar"
if [ ! -s "$tarball" ]; then
  mirror=$(bash scripts/containers/debian-mirror.sh)
  rootfs="$MARKETPIPE_CONTAINERS/rootfs.tmp"
  rm -rf "$rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$MARKETPIPE_CONTAINERS/debootstrap.log" 2>&1 \
    || { tail -20 "$MARKETPIPE_CONTAINERS/debootstrap.log" >&2; exit 1; }
  # apt inside builds uses the same mirror (and its security suite) as the host.
  cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/" 2>/dev/null || true
  if [ -f "$rootfs/etc/apt/sources.list.d/debian.sources" ]; then rm -f "$rootfs/etc/apt/sources.list"; fi
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf "$rootfs"
fi
podman import --quiet "$tarball" "$image" >/dev/null
podman tag "$image" docker.io/library/debian:bookworm
echo "base image $image (also docker.io/library/debian:bookworm)"
