#!/usr/bin/env bash
# Installs the external programs the tests start or call: a Redis server from Debian's
# packages (when none is installed), and grpcurl, MinIO (the S3 server the registry tests start)
# and Jaeger (the trace backend the tracing tests start), built with the Go toolchain into
# .tools/bin; for the deploy checks, kustomize (built the same way) and the Compose
# Specification's JSON schema (the copy compose-go embeds, from the Go module cache) into
# .tools/share; test tools only, never shipped.
set -euo pipefail
cd "$(dirname "$0")/.."
GRPCURL_VERSION="${GRPCURL_VERSION:-v1.9.4}"
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.8.0}"
COMPOSE_GO_VERSION="${COMPOSE_GO_VERSION:-v2.16.2}"
TOOLS_BIN="$PWD/.tools/bin"
TOOLS_SHARE="$PWD/.tools/share"
mkdir -p "$TOOLS_BIN" "$TOOLS_SHARE"

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

if [ ! -x "$TOOLS_BIN/minio" ]; then
    echo "install-tools: building minio $MINIO_VERSION (a few minutes the first time)"
    GOBIN="$TOOLS_BIN" GOFLAGS=-mod=mod go install "github.com/minio/minio@$MINIO_VERSION"
fi

if [ ! -x "$TOOLS_BIN/jaeger" ]; then
    echo "install-tools: building jaeger (pinned in scripts/tools/jaeger/go.mod; a few minutes the first time)"
    (cd scripts/tools/jaeger && go build -o "$TOOLS_BIN/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger)
fi

if [ "$("$TOOLS_BIN/kustomize" version 2>/dev/null)" != "$KUSTOMIZE_VERSION" ]; then
    echo "install-tools: building kustomize $KUSTOMIZE_VERSION"
    GOBIN="$TOOLS_BIN" GOFLAGS=-mod=mod go install \
        "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
fi

SCHEMA="$TOOLS_SHARE/compose-spec-$COMPOSE_GO_VERSION.json"
if [ ! -s "$SCHEMA" ]; then
    echo "install-tools: the Compose Specification schema of compose-go $COMPOSE_GO_VERSION"
    module_dir="$(GOFLAGS=-mod=mod go mod download -json \
        "github.com/compose-spec/compose-go/v2@$COMPOSE_GO_VERSION" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
    install -m 0644 "$module_dir/schema/compose-spec.json" "$SCHEMA.tmp"
    mv "$SCHEMA.tmp" "$SCHEMA"
fi
ln -sf "$(basename "$SCHEMA")" "$TOOLS_SHARE/compose-spec.json"
