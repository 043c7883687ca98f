#!/usr/bin/env bash
# Set up everything the course needs, from a fresh clone: the Python environment (.venv),
# the JavaScript the website serves from its own host (book/_vendor), and, with --browser,
# Chromium for the browser test. Safe to re-run: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.requirements-installed
if [ ! -f "$stamp" ] || ! cmp -s requirements.txt "$stamp"; then
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -r requirements.txt
  cp requirements.txt "$stamp"
fi

vendor=book/_vendor
if [ ! -f "$vendor/.package-lock.json" ] || ! cmp -s package-lock.json "$vendor/.package-lock.json"; then
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  rm -rf "$vendor"
  manager="$vendor/widgets/@jupyter-widgets/html-manager/dist"
  mkdir -p "$vendor/mathjax" "$manager"
  cp -r node_modules/mathjax/es5/. "$vendor/mathjax/"
  cp node_modules/requirejs/require.js "$vendor/widgets/"
  # The widget manager finds its fonts under <data-jupyter-widgets-cdn>/@jupyter-widgets/...
  find node_modules/@jupyter-widgets/html-manager/dist -maxdepth 1 -type f ! -name '*.map' \
    -exec cp {} "$manager/" \;
  cp package-lock.json "$vendor/.package-lock.json"
fi
cp book/_js/*.js "$vendor/widgets/"

if [ "${1:-}" = "--browser" ] && ! command -v chromium > /dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null
  else
    echo "The browser test needs Chromium: sudo apt-get install chromium" >&2
    exit 1
  fi
fi
