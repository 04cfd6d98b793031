#!/usr/bin/env sh
# Set up and run the whole test suite: the README's test command.
#
# Creates .venv with python3 (3.11 or newer; set PYTHON to use another), installs
# the project with its test extras, installs Debian's chromium and chromium-driver
# for the browser test and nginx for the check of deploy/nginx.conf if they are
# missing (this needs root and apt-get; it says which before installing; elsewhere
# install them yourself), runs `npm ci` in js/ for the JavaScript client's tests
# if its node_modules is missing (needs Node.js 20+), then runs pytest.
# Arguments go to pytest. STIRFRIED_TEST_REDIS_URL / STIRFRIED_TEST_BROKER_URL
# select your own services; without them an embedded Valkey server is used.
set -eu
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Stirfried needs Python 3.11 or newer: set PYTHON=python3.11 (or newer)")'
"$PYTHON" -m venv .venv
echo "installing Stirfried and its test tools into .venv (pip install -e '.[test,lint]')"
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[test,lint]'

missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium"
[ -x /usr/bin/chromedriver ] || missing="$missing chromium-driver"
command -v nginx >/dev/null 2>&1 || missing="$missing nginx"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "missing system packages:$missing (chromium and chromium-driver for the browser test," \
         "nginx for its config check); installing them with apt-get update && apt-get install -y$missing"
    apt-get update -qq
    # shellcheck disable=SC2086  # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "warning: system packages missing:$missing; they cannot be installed here (needs root and" \
         "apt-get): the browser tests fail and the nginx config check is skipped until they are installed" >&2
  fi
fi

# The JavaScript client's tests (tests/test_js_sdk.py) need its locked npm dependencies.
if ! [ -d js/node_modules ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "installing the JavaScript client's dependencies (npm ci in js/)"
    (cd js && npm ci --no-audit --no-fund --silent)
  else
    echo "warning: npm missing: tests/test_js_sdk.py fails until Node.js 20+ is installed and npm ci runs in js/" >&2
  fi
fi

exec .venv/bin/pytest "$@"
