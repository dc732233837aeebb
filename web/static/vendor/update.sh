#!/usr/bin/env bash
# Re-vendors the UI's front-end packages from the npm registry at the pinned versions.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent htmx.org@2.0.11 uplot@1.6.32 >/dev/null && for f in *.tgz; do mkdir "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done)
cp "$tmp"/htmx.org-2.0.11/package/dist/htmx.min.js .
cp "$tmp"/htmx.org-2.0.11/package/LICENSE htmx.LICENSE
cp "$tmp"/uplot-1.6.32/package/dist/uPlot.iife.min.js "$tmp"/uplot-1.6.32/package/dist/uPlot.min.css .
cp "$tmp"/uplot-1.6.32/package/LICENSE uPlot.LICENSE
