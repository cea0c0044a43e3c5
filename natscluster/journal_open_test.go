package natscluster

import (
	"context"
	"errors"
	"sync"
	"testing"

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
