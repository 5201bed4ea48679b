# Source me: podman configuration of this checkout, everything under .cache/containers
# (git-ignored), so tests never touch the host's /var/lib/containers or ~/.config.
#   . scripts/containers/env.sh && podman images
_mp_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export MARKETPIPE_CONTAINERS="$_mp_root/.cache/containers"
mkdir -p "$MARKETPIPE_CONTAINERS"
"$_mp_root/scripts/containers/write-conf.sh" "$MARKETPIPE_CONTAINERS"
export CONTAINERS_CONF="$MARKETPIPE_CONTAINERS/containers.conf"
export CONTAINERS_STORAGE_CONF="$MARKETPIPE_CONTAINERS/storage.conf"
unset _mp_root
