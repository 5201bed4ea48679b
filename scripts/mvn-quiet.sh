#!/usr/bin/env bash
# `mvn` for setup scripts: quiet, batch mode, no colour. Debian's Maven 3.8 still writes ANSI
# resets (ESC[0m) with -q -B -Dstyle.color=never (jansi options do not stop them either), which
# showed as stray codes in `make test` output; they are stripped here. Exit status is mvn's.
set -euo pipefail
mvn -q -B -Dstyle.color=never "$@" 2>&1 | sed 's/\x1b\[[0-9;]*m//g'
