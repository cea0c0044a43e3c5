#!/usr/bin/env bash
# The project's single test command: ./scripts/test.sh
#
# Installs what the tests need when it is missing (nginx, Chromium and
# Node.js from Debian's packages; the pinned AMPS JavaScript client with
# npm ci from interop/package-lock.json), then checks formatting, runs
# go vet, runs every Go test with the race detector (of the library's module,
# of the comparison module in bench/ and of the NATS cluster module in
# natscluster/, each with a go.mod of its own, so ./... at the top does not
# reach them) and finally runs every fuzz target for
# a bounded time. Works on a fresh Debian machine as root
# with no prior state, and in CI (CI=true, no stdin).
#
# Environment:
#   GO_TEST_TIMEOUT  go test -timeout of the unit test run (default 30m).
#   FUZZTIME         go test -fuzztime of each fuzz target (default 10s; a
#                    duration such as 1m or a count such as 5000x; must stay
#                    below go test's 10m per-run timeout). 0 skips fuzzing.
#
# The crash test (stresstest.TestCrashRecovery) runs here with 5 kills of
# a child ampsd; its long loop is a flag of its own, see stresstest/doc.go:
#   go test -run TestCrashRecovery -timeout 60m ./stresstest -args -crash.kills=200
#
# Once the tests have run, the last line is "tests: N passed, N failed,
# N skipped" (earlier steps fail with their own message); each fuzz
# target's bounded run counts as one test there (its seed corpus also ran,
# as a test of its own, in the unit test run).
set -euo pipefail

cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

# Go test timeout for the whole run: the interop tests start nginx, Chromium
# and many node processes, and -race slows everything on 2 cores.
GO_TEST_TIMEOUT="${GO_TEST_TIMEOUT:-30m}"

# Fuzzing time per target. Seven targets at 10 s plus their instrumented
# builds added about 80 s to a 2-core run that took 1m44s in all.
FUZZTIME="${FUZZTIME:-10s}"

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
say "go vet ./... (bench/)"
(cd bench && go vet ./...)
say "go vet ./... (natscluster/)"
(cd natscluster && go vet ./...)

fuzzlog="$(mktemp)"
modlog="$(mktemp)"
trap 'rm -f "$fuzzlog" "$modlog"' EXIT
status=0
passed=0
failed=0
skipped=0
# run_tests DIR runs every Go test of the module in DIR with the race
# detector and adds its counts to the totals.
run_tests() {
	say "go test -race -count=1 ./... (in $1)"
	set +e
	(cd "$1" && go test -race -count=1 -timeout "$GO_TEST_TIMEOUT" -v ./...) 2>&1 | tee "$modlog" |
		grep -v -E '^(=== (RUN|PAUSE|CONT|NAME)|\s*--- PASS: )'
	local st="${PIPESTATUS[0]}"
	set -e
	local p f k
	p="$(grep -c -E '^\s*--- PASS: ' "$modlog" || true)"
	f="$(grep -c -E '^\s*--- FAIL: ' "$modlog" || true)"
	k="$(grep -c -E '^\s*--- SKIP: ' "$modlog" || true)"
	if [ "$st" -ne 0 ] && [ "$f" -eq 0 ]; then
		# A build failure, panic or timeout fails without a "--- FAIL" line.
		f=1
	fi
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + k))
	[ "$status" -ne 0 ] || status="$st"
}
run_tests .
run_tests bench
run_tests natscluster

# --- fuzzing -----------------------------------------------------------------
# Targets are found, not listed here: every package with a "func Fuzz" in a
# _test.go file is asked for its fuzz targets (go test -list), so a new
# target runs without editing this script. go test -fuzz takes one target
# per run, so they run one after the other.
fuzz_packages() {
	grep -rlE --include='*_test.go' --exclude-dir=node_modules \
		--exclude-dir=testdata --exclude-dir=vendor '^func Fuzz' . |
		xargs -r -n1 dirname | sort -u
}

# deadline_race_only succeeds when the failed fuzz run in $1 reported
# nothing but "context deadline exceeded" for its target: Go's fuzz
# coordinator races its own -fuzztime deadline (golang/go#75804, fixed in
# Go 1.27; go.mod is on 1.26) and then fails a run that found nothing. A
# real finding prints the failing test's output and writes an input, and a
# crash or hang says so, so anything else in the report is a failure.
deadline_race_only() {
	grep -q 'Failing input written to' "$1" && return 1
	awk -v name="$2" '
		$0 ~ "^--- FAIL: " name " \\(" { inside = 1; next }
		inside && /^(FAIL|exit status)/ { inside = 0; next }
		inside {
			line = $0
			gsub(/^[ \t]+|[ \t]+$/, "", line)
			if (line == "") next
			if (line == "context deadline exceeded") { seen = 1; next }
			other = 1
		}
		END { exit !(seen && !other) }
	' "$1"
}

# in_module PKG CMD... runs CMD with PKG's relative path appended, from the
# directory of the Go module PKG belongs to (the nearest enclosing directory
# with a go.mod): bench/ and natscluster/ are modules of their own, which go
# commands run at the top do not reach.
in_module() {
	local pkg="$1" mod rel="."
	shift
	mod="$pkg"
	while [ "$mod" != "." ] && [ ! -f "$mod/go.mod" ]; do
		mod="$(dirname "$mod")"
	done
	[ "$pkg" = "$mod" ] || rel="./${pkg#"$mod"/}"
	(cd "$mod" && "$@" "$rel")
}

fuzz_failed=()
if [ "$FUZZTIME" = "0" ]; then
	say "fuzzing skipped (FUZZTIME=0)"
fi
for pkg in $(fuzz_packages); do
	set +e
	targets="$(in_module "$pkg" go test -list '^Fuzz' 2>&1)"
	list_status=$?
	set -e
	if [ "$list_status" -ne 0 ]; then
		echo "$targets"
		echo "fuzz: cannot list the fuzz targets of $pkg" >&2
		fuzz_failed+=("$pkg (go test -list)")
		failed=$((failed + 1))
		continue
	fi
	for name in $(printf '%s\n' "$targets" | grep -E '^Fuzz[A-Za-z0-9_]*$'); do
		if [ "$FUZZTIME" = "0" ]; then
			skipped=$((skipped + 1))
			continue
		fi
		say "go test -fuzz=^${name}\$ -fuzztime=$FUZZTIME $pkg"
		set +e
		in_module "$pkg" go test -run='^$' -fuzz="^${name}\$" -fuzztime="$FUZZTIME" >"$fuzzlog" 2>&1
		fuzz_status=$?
		set -e
		if [ "$fuzz_status" -eq 0 ] || deadline_race_only "$fuzzlog" "$name"; then
			passed=$((passed + 1))
			# The last progress line says how much was covered.
			grep -E '^fuzz: elapsed' "$fuzzlog" | tail -n 1 || true
			if [ "$fuzz_status" -ne 0 ]; then
				echo "fuzz: $name: nothing failed; ignoring go test's bare \"context deadline exceeded\" at the -fuzztime boundary (golang/go#75804)"
			fi
			continue
		fi
		failed=$((failed + 1))
		cat "$fuzzlog"
		# go test writes a crashing input under the package's
		# testdata/fuzz/<target>/, where it becomes a seed for later runs.
		input="$(sed -n -E 's/^[[:space:]]*Failing input written to (.*)$/\1/p' "$fuzzlog" | tail -n 1)"
		if [ -n "$input" ]; then
			input="${pkg#./}/$input"
		else
			# An input found earlier fails again while the corpus is
			# replayed; it is in testdata or in go's fuzz cache.
			entry="$(sed -n -E 's/^failure while testing seed corpus entry: [^/]+\/(.*)$/\1/p' "$fuzzlog" | tail -n 1)"
			if [ -n "$entry" ] && [ -f "$pkg/testdata/fuzz/$name/$entry" ]; then
				input="${pkg#./}/testdata/fuzz/$name/$entry"
			elif [ -n "$entry" ]; then
				input="$(go env GOCACHE)/fuzz/$(in_module "$pkg" go list)/$name/$entry"
			fi
		fi
		if [ -n "$input" ]; then
			echo "fuzz: $name in $pkg failed; failing input: $input" >&2
			echo "fuzz: re-run with: go test -run='^${name}/$(basename "$input")\$' $pkg" >&2
			fuzz_failed+=("$name ($input)")
		else
			echo "fuzz: $name in $pkg failed without writing an input (see the output above)" >&2
			fuzz_failed+=("$name")
		fi
	done
done
if [ "${#fuzz_failed[@]}" -gt 0 ]; then
	echo "fuzz: failed: ${fuzz_failed[*]}" >&2
	[ "$status" -ne 0 ] || status=1
fi

echo "tests: ${passed} passed, ${failed} failed, ${skipped} skipped"
exit "$status"
