#!/usr/bin/env sh
# Set up and run the whole test suite: the README's test command.
#
# Creates .venv, installs the project with its test extras, installs Debian's
# chromium and chromium-driver for the browser test and nginx for the check of
# deploy/nginx.conf if they are missing (this needs root and apt-get; elsewhere
# install them yourself), runs `npm ci` in js/ for the JavaScript client's tests
# if its node_modules is missing (needs Node.js 20+), then runs pytest.
# Arguments go to pytest. STIRFRIED_TEST_REDIS_URL / STIRFRIED_TEST_BROKER_URL
# select your own services; without them an embedded Valkey server is used.
set -eu
cd "$(dirname "$0")/.."

python3.11 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -e '.[test,lint]'

if ! [ -x /usr/bin/chromium ] || ! [ -x /usr/bin/chromedriver ] || ! command -v nginx >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium and chromium-driver (browser test) and nginx (its config check)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver nginx >/dev/null
  else
    echo "warning: chromium, chromium-driver or nginx missing and cannot be installed here;" \
         "the browser tests fail and the nginx config check is skipped until they are installed" >&2
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
