#!/usr/bin/env bash
# CI for the JavaScript client: install exactly the locked dependencies, then the
# type checks, unit tests, `npm pack` contents and the vendored bundle's freshness.
# The tests against real gateways run in pytest (tests/test_js_sdk.py), which
# needs this script's `npm ci` first.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
npm test
