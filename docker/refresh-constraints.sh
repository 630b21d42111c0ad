#!/usr/bin/env bash
# Refresh docker/constraints.txt, the one place nas pins the versions that CI, the image and
# the cluster setups install. Resolves the newest releases the project's ranges admit in a
# throw-away virtual environment (CPU torch first, as CI does), rewrites the pins of the
# packages already listed, and leaves the change for review: run the tests, then commit.
#   bash docker/refresh-constraints.sh
set -euo pipefail
cd "$(dirname "$0")/.."
file=docker/constraints.txt
venv=$(mktemp -d)/venv
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q torch==2.13.0
"$venv/bin/python" -m pip install -q -e ".[postgres,mysql,s3,test]"
tmp=$(mktemp)
while IFS= read -r line; do
    name=${line%%==*}
    if [[ $line == \#* || -z $line || $name == "$line" ]]; then
        printf '%s\n' "$line" >>"$tmp"
        continue
    fi
    version=$("$venv/bin/python" -c "from importlib import metadata; print(metadata.version('$name'))")
    printf '%s==%s\n' "$name" "$version" >>"$tmp"
done <"$file"
mv "$tmp" "$file"
rm -rf "$(dirname "$venv")"
git --no-pager diff --stat -- "$file" || true
echo "pins refreshed; run: pip install -c $file -e \".[test]\" && python -m pytest -q"
