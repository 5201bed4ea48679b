#!/usr/bin/env bash
# Print the Debian mirror URL apt already uses (deb822 .sources or one-line sources.list).
set -euo pipefail
url=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | grep -i debian | head -n1 || true)
if [ -z "$url" ]; then
  url=$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
    | awk '{print $2}' | grep -v security | grep -i debian | head -n1 || true)
fi
echo "${url:-http://deb.debian.org/debian}"
