package natscluster

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/natscluster/internal/natstest"
)

// TestJournalOpenedByNodesAtOnce: three nodes opening one journal and one
// SOW order (R3) at the same moment on a new NATS cluster, as three
// processes started together do, all open them: creating the streams and
// the high-water bucket races, and the losers use what the winner made.
func TestJournalOpenedByNodesAtOnce(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	cfg := journalConfig(3)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			nc := natstest.Connect(t, c.URL(i))
			j, err := OpenJournal(ctx, nc, cfg)
			if err == nil {
				j.Close()
			}
			bp, berr := NewBackplane(nc, BackplaneConfig{})
			if berr == nil {
				var o *OrderedBackplane
				if o, berr = NewOrderedBackplane(ctx, bp, SOWConfig{Stream: cfg.Stream + "_SOW", Prefix: cfg.Prefix + ".sow", Replicas: 3}); berr == nil {
					o.Close()
				} else {
					bp.Close()
				}
			}
			errs[i] = errors.Join(err, berr)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: %v", i, err)
		}
	}
}

// TestOpenRefusedAtOnce: a journal or SOW order the cluster can never
// have (three replicas on a single server) is refused with JetStream's
// reason at once, not after retries, even without a deadline; a SOW
// stream that takes other subjects (another stream's name) is refused.
func TestOpenRefusedAtOnce(t *testing.T) {
	c := natstest.StartCluster(t, 1)
	nc := natstest.Connect(t, c.URL(0))
	start := time.Now()
	_, err := OpenJournal(context.Background(), nc, journalConfig(3))
	if err == nil || !strings.Contains(err.Error(), "replicas") || time.Since(start) > 5*time.Second {
		t.Fatalf("a journal of 3 replicas on one server: %v after %v; want the refusal at once", err, time.Since(start))
	}
	cfg := journalConfig(1)
	j := openJournal(t, nc, cfg)
	defer j.Close()
	bp, err := NewBackplane(nc, BackplaneConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer bp.Close()
	if _, err := NewOrderedBackplane(context.Background(), bp, SOWConfig{Stream: cfg.Stream}); err == nil || !strings.Contains(err.Error(), "takes subjects") {
		t.Fatalf("a SOW order on the journal's stream: %v; want it refused", err)
	}
}
