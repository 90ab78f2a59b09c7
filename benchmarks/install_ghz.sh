#!/usr/bin/env bash
# Installs ghz (the gRPC load generator the benchmarks drive) into .tools/bin with the Go
# toolchain. Idempotent: does nothing when .tools/bin/ghz already reports the pinned version.
#   benchmarks/install_ghz.sh            # or: GHZ_VERSION=v0.121.0 benchmarks/install_ghz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# Newest tag on the Go module proxy when pinned (2025-12-07). The proxy's /@v/list for this
# module only shows v0.93.0, so check newer tags with `go list -m -json github.com/bojand/ghz@vX`.
GHZ_VERSION="${GHZ_VERSION:-v0.121.0}"
TOOLS_BIN="$PWD/.tools/bin"
GHZ="$TOOLS_BIN/ghz"
mkdir -p "$TOOLS_BIN"

if [ -x "$GHZ" ] && "$GHZ" --version 2>&1 | grep -qx "${GHZ_VERSION#v}\|$GHZ_VERSION"; then
    echo "install_ghz: ghz $GHZ_VERSION already in $TOOLS_BIN"
    exit 0
fi
if ! command -v go >/dev/null 2>&1; then
    echo "install_ghz: Go is needed to build ghz (https://go.dev/dl/)" >&2
    exit 1
fi
echo "install_ghz: building ghz $GHZ_VERSION into $TOOLS_BIN (a minute or two the first time)"
GOBIN="$TOOLS_BIN" GOFLAGS=-mod=mod go install \
    -ldflags "-X main.version=${GHZ_VERSION#v}" \
    "github.com/bojand/ghz/cmd/ghz@$GHZ_VERSION"
"$GHZ" --version
