#!/usr/bin/env bash
# lint.sh — what `make lint` checks: gofmt, go vet, go mod tidy, staticcheck.
#
# Every check runs; the exit status is 1 if any failed.
#
# Environment: PKGS (default ./...); STATICCHECK, the `go run` argument for staticcheck
# (default honnef.co/go/tools/cmd/staticcheck@v0.8.2, i.e. 2026.2.2, which knows Go
# 1.26; empty skips it). It comes from the Go module proxy on first use (about 20 s).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

GO=${GO:-go}
read -ra pkgs <<<"${PKGS:-./...}"
STATICCHECK=${STATICCHECK-honnef.co/go/tools/cmd/staticcheck@v0.8.2}
failed=()

# gofmt: every .go file outside hidden folders (.git, .testenv, .cache) and testdata/
# (fuzz corpora and fixtures may be malformed on purpose).
echo "+ gofmt -l"
unformatted=$(find . -path './.*' -prune -o -path '*/testdata' -prune -o -path ./vendor -prune \
	-o -name '*.go' -type f -exec gofmt -l {} +)
if [[ -n $unformatted ]]; then
	echo "lint: gofmt would change (run gofmt -w):"
	printf '%s\n' "$unformatted" | sed 's/^/  /'
	failed+=(gofmt)
fi

echo "+ $GO vet ${pkgs[*]}"
"$GO" vet "${pkgs[@]}" || failed+=(vet)

echo "+ $GO mod tidy -diff"
"$GO" mod tidy -diff || failed+=("mod tidy (run go mod tidy)")

if [[ -n $STATICCHECK ]]; then
	echo "+ $GO run $STATICCHECK ${pkgs[*]}"
	"$GO" run "$STATICCHECK" "${pkgs[@]}" || failed+=(staticcheck)
fi

if ((${#failed[@]})); then
	printf 'lint: failed: %s\n' "${failed[*]}"
	exit 1
fi
echo "lint: ok"
