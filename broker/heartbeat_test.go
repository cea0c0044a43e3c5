package broker

import (
	"testing"
	"time"
)

// simulate runs a heartbeater against a JS-like client (wire spec §10.2):
// it beats when a server heartbeat arrives and more than the interval has
// passed since its own last beat; latency delays each direction. It
// returns the largest gap between the client's beats.
func simulate(t *testing.T, interval, latency time.Duration, d time.Duration) (maxGap time.Duration, sent int) {
	t.Helper()
	t0 := time.Unix(1000, 0)
	h := heartbeater{misses: 3}
	every := h.start(interval, t0)
	clientBeat := t0 // the start command counts as its first beat
	serverRead := t0.Add(latency)
	for now := t0.Add(every); now.Before(t0.Add(d)); now = now.Add(every) {
		dead, send := h.tick(now, serverRead, serverRead)
		if dead {
			t.Fatalf("declared dead at %v", now.Sub(t0))
		}
		if !send {
			continue
		}
		sent++
		arrive := now.Add(latency)
		if arrive.Sub(clientBeat) > interval {
			maxGap = max(maxGap, arrive.Sub(clientBeat))
			clientBeat = arrive
			serverRead = arrive.Add(latency)
		}
	}
	return maxGap, sent
}

func TestHeartbeatCadenceKeepsJSClientWellInsideItsWindow(t *testing.T) {
	for _, latency := range []time.Duration{0, 5 * time.Millisecond, 200 * time.Millisecond} {
		gap, sent := simulate(t, time.Second, latency, time.Minute)
		// The JS client gives up 2 intervals after its last beat.
		if limit := 1300*time.Millisecond + 2*latency; gap > limit {
			t.Errorf("latency %v: beats %v apart, want at most %v", latency, gap, limit)
		}
		// At most two per interval (a regular one and a prompt), not a
		// flood.
		if sent > 121 {
			t.Errorf("latency %v: %d heartbeats in a minute", latency, sent)
		}
	}
}

func TestHeartbeatWatchdog(t *testing.T) {
	t0 := time.Unix(1000, 0)
	h := heartbeater{misses: 3}
	every := h.start(time.Second, t0)
	var dead bool
	now := t0
	for !dead && now.Sub(t0) < 10*time.Second {
		now = now.Add(every)
		dead, _ = h.tick(now, t0, t0)
	}
	if got := now.Sub(t0); got <= 3*time.Second || got > 3*time.Second+every {
		t.Fatalf("silent client declared dead after %v, want just past 3s", got)
	}
	// A tick that comes late after a pause does not judge silence.
	h.start(time.Second, t0)
	if dead, _ := h.tick(t0.Add(5*time.Second), t0, t0); dead {
		t.Fatal("declared dead on the first tick after a pause")
	}
	if dead, _ := h.tick(t0.Add(5*time.Second+every), t0, t0); !dead {
		t.Fatal("not dead on the tick after")
	}
}

func TestHeartbeatStop(t *testing.T) {
	var h heartbeater
	if every := h.start(0, time.Now()); every != 0 {
		t.Fatalf("stopped heartbeats tick every %v", every)
	}
	if every := h.start(100*time.Millisecond, time.Now()); every != minHeartbeatCheck {
		t.Fatalf("100ms interval ticks every %v", every)
	}
}
