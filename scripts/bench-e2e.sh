#!/usr/bin/env bash
# bench-e2e.sh — the end-to-end benchmark behind `make bench-e2e`.
#
#   scripts/bench-e2e.sh [shoal-bench flags...]
#
# Installs Debian's prometheus package when /usr/bin/prometheus is missing (Prometheus in
# agent mode is the comparison), builds bin/shoal and bin/shoal-bench, starts the Kafka test
# broker (scripts/testenv.sh; its address and log directory reach shoal-bench as
# SHOAL_TEST_KAFKA and SHOAL_TEST_KAFKA_LOGDIR), runs bin/shoal-bench with the flags given,
# and stops the broker whatever happens. Needs at least 2 cores: the scraper is pinned to
# core 0 and the farm to core 1.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

if [ ! -x /usr/bin/prometheus ]; then
	sudo=
	[ "$(id -u)" -eq 0 ] || sudo="sudo -n"
	echo "bench-e2e: installing Debian's prometheus package" >&2
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq prometheus >/dev/null
fi
if [ "$(nproc)" -lt 2 ]; then
	echo "bench-e2e: needs 2 cores (scraper on one, farm on the other); this machine has $(nproc)" >&2
	exit 1
fi
GO=${GO:-go}
CGO_ENABLED=0 $GO build -ldflags "-X main.version=$(git describe --always --dirty 2>/dev/null || echo dev)" -o bin/shoal ./cmd/shoal
$GO build -o bin/shoal-bench ./bench/cmd/shoal-bench
exec scripts/testenv.sh run kafka -- bin/shoal-bench "$@"
