#!/usr/bin/env bash
# Re-vendors axe-core, the accessibility checker of the browser test, from the npm registry.
set -euo pipefail
cd "$(dirname "$0")"
version=4.14.1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "axe-core@$version" >/dev/null && tar xzf "axe-core-$version.tgz")
cp "$tmp"/package/axe.min.js "$tmp"/package/LICENSE "$tmp"/package/LICENSE-3RD-PARTY.txt .
