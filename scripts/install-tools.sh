#!/usr/bin/env bash
# Installs the external programs the tests start or call: a Redis server from Debian's
# packages (when none is installed) and grpcurl, built with the Go toolchain into .tools/bin.
set -euo pipefail
cd "$(dirname "$0")/.."
GRPCURL_VERSION="${GRPCURL_VERSION:-v1.9.4}"
TOOLS_BIN="$PWD/.tools/bin"
mkdir -p "$TOOLS_BIN"

if ! command -v redis-server >/dev/null 2>&1; then
    echo "install-tools: installing redis-server from Debian packages"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi

if [ ! -x "$TOOLS_BIN/grpcurl" ]; then
    echo "install-tools: building grpcurl $GRPCURL_VERSION"
    GOBIN="$TOOLS_BIN" GOFLAGS=-mod=mod go install \
        "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
fi
