#!/usr/bin/env bash
# Set up everything the course needs, from a fresh clone: the Python environment (.venv),
# the JavaScript the website serves from its own host (book/_vendor), and, with --browser,
# Chromium for the browser test, bubblewrap for the grader's sandbox and g++ for torch.compile.
#   --lab   only what a learner needs to run the notebooks in JupyterLab (no Node.js):
#           course_lib with its [lab] extra, at the versions of requirements.txt.
# Safe to re-run: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.requirements-installed
if [ "${1:-}" = "--lab" ]; then
  lab_stamp=.venv/.lab-installed
  if { [ ! -f "$stamp" ] || ! cmp -s requirements.txt "$stamp"; } &&
     { [ ! -f "$lab_stamp" ] || ! cmp -s requirements.txt "$lab_stamp"; }; then
    grep -v '^-e ' requirements.txt > .venv/constraints.txt  # the lock, as constraints
    .venv/bin/pip install --quiet --upgrade pip
    .venv/bin/pip install --quiet -c .venv/constraints.txt -e ".[lab]"
    cp requirements.txt "$lab_stamp"
  fi
  exit 0
fi
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

# fused=True optimizers compile their update with torch.compile, whose CPU backend (Inductor)
# calls a C++ compiler; without one they warn and run eager, and their tests fail.
if [ "${1:-}" = "--browser" ] && [ "$(uname)" = Linux ] && ! command -v g++ > /dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ > /dev/null
  else
    echo "WARNING: no C++ compiler (sudo apt-get install g++): fused=True runs eager" >&2
  fi
fi

# The grader runs student code in a bubblewrap sandbox; without it, it grades unsandboxed
# with a warning and its isolation tests are skipped.
if [ "${1:-}" = "--browser" ] && [ "$(uname)" = Linux ] && ! command -v bwrap > /dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap \
      > /dev/null; } ||
      echo "WARNING: could not install bubblewrap; the grader's sandbox tests will be skipped" >&2
  else
    echo "WARNING: no bubblewrap (sudo apt-get install bubblewrap); the grader's sandbox" \
      "tests will be skipped" >&2
  fi
fi
