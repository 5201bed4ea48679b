#!/usr/bin/env bash
# write-conf.sh DIR: containers.conf and storage.conf for podman, roots under DIR.
# runc and cgroupfs: crun and systemd cgroups fail on this host's hybrid cgroups; file events
# (no journald); ulimits, because podman's defaults exceed what this kernel lets us set.
set -euo pipefail
dir=$1
mkdir -p "$dir/storage" "$dir/run" "$dir/tmp" "$dir/networks"
cat >"$dir/containers.conf.new" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$dir/run/events.log"
tmp_dir = "$dir/tmp"

[network]
network_config_dir = "$dir/networks"
CONF
cat >"$dir/storage.conf.new" <<CONF
[storage]
driver = "overlay"
graphroot = "$dir/storage"
runroot = "$dir/run"
CONF
mv "$dir/containers.conf.new" "$dir/containers.conf"
mv "$dir/storage.conf.new" "$dir/storage.conf"
