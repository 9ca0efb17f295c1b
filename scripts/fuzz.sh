#!/usr/bin/env bash
# fuzz.sh — run every fuzz target of the module for a short while (`make fuzz`).
#
# Finds `func FuzzXxx(` in each package's _test.go files and runs
#   go test -run '^$' -fuzz '^FuzzXxx$' -fuzztime FUZZTIME PACKAGE
# one target at a time (go test fuzzes one target per invocation). A failing input is
# written to the package's testdata/fuzz/FuzzXxx/ by go test: commit it with the fix,
# it then runs as a regression case in every `go test`.
#
# Environment: PKGS (default ./...), FUZZTIME (default 10s per target).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

GO=${GO:-go}
read -ra pkgs <<<"${PKGS:-./...}"
fuzztime=${FUZZTIME:-10s}
failed=() ran=0

while read -r dir importpath; do
	[[ -n $dir ]] || continue
	shopt -s nullglob
	files=("$dir"/*_test.go)
	shopt -u nullglob
	((${#files[@]})) || continue
	while read -r target; do
		[[ -n $target ]] || continue
		ran=$((ran + 1))
		echo "+ $GO test -run '^\$' -fuzz '^$target\$' -fuzztime $fuzztime $importpath"
		"$GO" test -run '^$' -fuzz "^$target\$" -fuzztime "$fuzztime" "$importpath" ||
			failed+=("$importpath.$target")
	done < <(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "${files[@]}" | sort -u)
done < <("$GO" list -f '{{.Dir}} {{.ImportPath}}' "${pkgs[@]}")

echo "fuzz: $ran targets run, ${#failed[@]} failed"
if ((${#failed[@]})); then
	printf '  %s\n' "${failed[@]}"
	exit 1
fi
