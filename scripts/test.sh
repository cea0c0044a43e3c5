#!/usr/bin/env bash
# The project's single test command: ./scripts/test.sh
#
# Installs what the tests need when it is missing (nginx, Chromium and
# Node.js from Debian's packages; the pinned AMPS JavaScript client with
# npm ci from interop/package-lock.json), then checks formatting, runs
# go vet and runs every Go test with the race detector. Works on a fresh
# Debian machine as root with no prior state, and in CI (CI=true, no stdin).
set -euo pipefail

cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

# Go test timeout for the whole run: the interop tests start nginx, Chromium
# and many node processes, and -race slows everything on 2 cores.
GO_TEST_TIMEOUT="${GO_TEST_TIMEOUT:-30m}"

say() { printf '==> %s\n' "$*"; }

# --- system packages -------------------------------------------------------
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
	sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null 2>&1 || {
			echo "test.sh: need root or sudo to install: ${missing[*]}" >&2
			exit 1
		}
		sudo=(sudo)
	fi
	say "installing ${missing[*]} (apt-get)"
	"${sudo[@]}" apt-get update -qq
	"${sudo[@]}" apt-get install -y -qq "${missing[@]}" </dev/null
fi
command -v go >/dev/null 2>&1 || {
	echo "test.sh: the Go toolchain (go.mod: $(awk '/^go /{print $2}' go.mod)) is not on PATH" >&2
	exit 1
}

# --- npm packages of the interop tests --------------------------------------
say "npm ci (interop/)"
(cd interop && npm ci --no-audit --no-fund --loglevel=error </dev/null)

# --- checks ------------------------------------------------------------------
say "gofmt -l"
unformatted="$(gofmt -l .)"
if [ -n "$unformatted" ]; then
	echo "test.sh: files need gofmt:" >&2
	echo "$unformatted" >&2
	exit 1
fi

say "go vet ./..."
go vet ./...

say "go test -race -count=1 ./..."
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
go test -race -count=1 -timeout "$GO_TEST_TIMEOUT" -v ./... 2>&1 | tee "$log" |
	grep -v -E '^(=== (RUN|PAUSE|CONT|NAME)|\s*--- PASS: )'
status="${PIPESTATUS[0]}"
set -e
passed="$(grep -c -E '^\s*--- PASS: ' "$log" || true)"
failed="$(grep -c -E '^\s*--- FAIL: ' "$log" || true)"
skipped="$(grep -c -E '^\s*--- SKIP: ' "$log" || true)"
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
	# A build failure, panic or timeout fails without a "--- FAIL" line.
	failed=1
fi
echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped"
exit "$status"
