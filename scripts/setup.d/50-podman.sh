#!/usr/bin/env bash
# Containers for the compose-stack tests (tests/deploy/): podman and what it needs to run
# rootful containers here (iptables for netavark's bridge networks; runc, not crun: crun
# fails on this host's hybrid cgroups), debootstrap for the local base image (no container
# registry is reachable), and
# docker-compose v1 to validate the compose files. podman-compose comes from the `dev` extra.
# Then the base image itself (scripts/containers/base-image.sh, cached under .cache/containers).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/install-system-deps.sh podman runc netavark aardvark-dns slirp4netns \
  fuse-overlayfs uidmap catatonit iptables debootstrap docker-compose
bash scripts/containers/base-image.sh
