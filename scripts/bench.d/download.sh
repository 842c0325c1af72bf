#!/usr/bin/env bash
# scripts/bench download: chunked provisioning downloads vs raw MQTT publishing of the same bytes.
# $1 = build directory (given by scripts/bench); further arguments go to query_bench.
set -euo pipefail
build=$1
shift
exec "$build/tests/query_bench" --only download "$@"
