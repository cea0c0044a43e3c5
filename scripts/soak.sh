#!/bin/sh
# soak.sh runs the broker soak test (stresstest.TestSoak): connection churn,
# mixed publishers and subscribers, heartbeats and slow consumers for a
# while, sampling memory, goroutines and Stats every 10 s, and failing when
# a well-behaved client loses a message or memory or goroutines grow.
#
# Usage: scripts/soak.sh [duration]      (default 3m; e.g. scripts/soak.sh 30m)
#
# Environment:
#   SOAK_RACE=1      build with the race detector. Off by default: -race
#                    multiplies memory (shadow memory grows with the heap
#                    touched) and slows the broker several times, which
#                    distorts exactly what the soak measures (flat RSS and
#                    heap at a realistic load). Races are covered by the
#                    default suite, which runs the attack tests with -race.
#   SOAK_RATE=N      messages per second of each long-lived publisher (default 1000).
#   SOAK_SAMPLE=D    sampling interval (default 10s).
#
# The test flags go after -args: go test stops reading its own flags at
# the first one it does not know, so "-soak" before the package would turn
# the package path into a test argument.
set -eu
cd "$(dirname "$0")/.."
duration=${1:-3m}
race=
if [ "${SOAK_RACE:-0}" = 1 ]; then
	race=-race
fi
exec go test $race -count=1 -run '^TestSoak$' -timeout 30m -v ./stresstest \
	-args -soak -soak.duration="$duration" -soak.rate="${SOAK_RATE:-1000}" -soak.sample="${SOAK_SAMPLE:-10s}"
