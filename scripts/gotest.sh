#!/usr/bin/env bash
# gotest.sh — `go vet` then `go test -race` over the module: the Go half of `make test`.
# `make test` runs it inside `scripts/testenv.sh run`, so the SHOAL_TEST_* variables
# of the real services are in its environment.
#
# Both steps always run. The exit status is go test's when it failed, else go vet's.
#
# Environment: PKGS (default ./...), GOTESTFLAGS (extra go test flags, e.g. -run X -v),
# GOTEST_TIMEOUT (default 8m; go test's -timeout, per test binary).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

GO=${GO:-go}
read -ra pkgs <<<"${PKGS:-./...}"
read -ra extra <<<"${GOTESTFLAGS:-}"
timeout=${GOTEST_TIMEOUT:-8m}

vars=$(env | grep -E '^SHOAL_TEST_[A-Z0-9_]+=' | sort || true)
if [[ -n $vars ]]; then
	echo "gotest: real services:"
	printf '%s\n' "$vars" | sed 's/^/  /'
else
	echo "gotest: no SHOAL_TEST_* variables set: tests that need a real service fail (without -short)"
fi

start=$SECONDS
echo "+ $GO vet ${pkgs[*]}"
"$GO" vet "${pkgs[@]}"
vet=$?
echo "gotest: go vet exit $vet ($((SECONDS - start))s)"

start=$SECONDS
echo "+ $GO test -race -count=1 -timeout $timeout ${extra[*]} ${pkgs[*]}"
"$GO" test -race -count=1 -timeout "$timeout" "${extra[@]}" "${pkgs[@]}"
test=$?
echo "gotest: go test exit $test ($((SECONDS - start))s)"

if ((test != 0)); then exit "$test"; fi
exit "$vet"
