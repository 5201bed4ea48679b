#!/usr/bin/env bash
# wheelhouse.sh PYTHON_IMAGE [DIR]: every wheel the marketpipe image installs (the project's
# dependencies, dbt's, and the build backend) into DIR (default .cache/containers/wheels).
# pip runs inside PYTHON_IMAGE, so environment markers (python_full_version, ...) resolve for
# the image's interpreter, with the host's pip cache and CA bundle mounted. Image builds then
# install offline from it (`--build-context wheels=DIR --build-arg PIP_INDEX_ARGS=--no-index`),
# and a warm rerun downloads nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/containers/env.sh
image=$1
dir=${2:-.cache/containers/wheels}
key=$( (cat pyproject.toml deploy/docker/dbt-requirements.txt; echo "$image") | sha256sum | cut -c1-16)
[ -f "$dir/.complete-$key" ] && { echo "$dir"; exit 0; }
mkdir -p "$dir" "$HOME/.cache/pip"
rm -f "$dir"/.complete-*
dir=$(cd "$dir" && pwd)
ca=/etc/ssl/certs/ca-certificates.crt
mounts=(-v "$dir:/wheels" -v "$PWD/pyproject.toml:/in/pyproject.toml:ro"
  -v "$PWD/deploy/docker/dbt-requirements.txt:/in/dbt-requirements.txt:ro"
  -v "$HOME/.cache/pip:/root/.cache/pip")
[ -f "$ca" ] && mounts+=(-v "$ca:/etc/ssl/certs/ca-certificates.crt:ro")
podman run --rm "${mounts[@]}" -e PIP_DISABLE_PIP_VERSION_CHECK=1 -e PIP_DEFAULT_TIMEOUT=180 \
  -e PIP_CERT=/etc/ssl/certs/ca-certificates.crt "$image" sh -euc '
    python3 -m venv /tmp/v
    deps=$(/tmp/v/bin/python -c "import tomllib; print(chr(10).join(tomllib.load(open(\"/in/pyproject.toml\", \"rb\"))[\"project\"][\"dependencies\"]))")
    echo "$deps" > /tmp/deps.txt
    /tmp/v/bin/pip wheel --quiet -w /wheels "setuptools>=69" wheel \
      -r /in/dbt-requirements.txt -r /tmp/deps.txt'
touch "$dir/.complete-$key"
echo "$dir"
