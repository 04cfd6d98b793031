#!/usr/bin/env bash
# Refresh the Socket.IO JavaScript client that the example page uses.
#
# The page must work offline and without a build step, on machines that have
# Python but no Node.js, so the built files of the npm package socket.io-client
# ship inside the Python package. This script (which needs npm) replaces them
# with VERSION's and records their checksums; a test checks the files against it.
set -euo pipefail
version=${1:?usage: tools/vendor-socketio-client.sh VERSION (e.g. 4.8.4)}
target="$(cd "$(dirname "$0")/.." && pwd)/server/development/static/vendor/socket.io-client"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "socket.io-client@$version" >/dev/null && tar xzf socket.io-client-*.tgz)
mkdir -p "$target"
cp "$work/package/dist/socket.io.min.js" "$work/package/dist/socket.io.msgpack.min.js" "$work/package/LICENSE" "$target/"
echo "$version" > "$target/VERSION"
(cd "$target" && sha256sum socket.io.min.js socket.io.msgpack.min.js LICENSE > SHA256SUMS)
echo "vendored socket.io-client $version into $target"
