// Package stresstest holds attack and soak tests of the broker. It has no
// library code: its tests start a broker on 127.0.0.1, attack it over real
// sockets with hostile clients (garbage bytes, truncated and oversized
// frames, endless headers, HTTP preflight floods, slowloris, connection
// bursts, readers that never read) while well-behaved clients check that
// they lose nothing, and check the broker's authentication and entitlement
// answers over TCP.
//
// The soak test (TestSoak) runs only when asked for, because it takes
// minutes:
//
//	go test -run TestSoak -timeout 30m -v ./stresstest -args -soak -soak.duration=3m
//
// or scripts/soak.sh. The test flags go after -args: go test stops reading
// its own flags at the first one it does not know. It churns connections, mixes publishers and
// subscribers (some heartbeating, some never reading), samples memory,
// goroutines and broker statistics, and fails when they grow.
//
// The crash test (TestCrashRecovery) builds cmd/ampsd, runs it as a child
// process with a file journal, and kills it with SIGKILL at random moments
// while publishers with a publish store and bookmark subscribers work
// through the restarts; it then checks that nothing acknowledged was lost
// and no subscriber saw a gap or a duplicate. It runs 5 kills by default
// (a few seconds); the long loop:
//
//	go test -run TestCrashRecovery -timeout 60m -v ./stresstest -args -crash.kills=200
//
// (-crash.seed=N replays the kill schedule of a logged seed).
//
// The test clients here speak the AMPS stream encoding (length-prefixed
// frames, the HTTP preflight, the commands and their acks) with their own
// small codec rather than package protocol, so the broker is checked against
// an independent reading of the spec.
package stresstest
