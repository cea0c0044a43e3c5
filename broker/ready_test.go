package broker_test

import (
	"errors"
	"testing"

	"github.com/ampsbroker/ampsbroker/ampstest"
	"github.com/ampsbroker/ampsbroker/broker"
)

// stateOrderer is a backplane that orders SOW topics, reports a fixed
// state, and whose StartOrdered returns startErr.
type stateOrderer struct {
	state    broker.BackplaneState
	startErr error
}

func (*stateOrderer) Publish(*broker.RemotePublish) error              { return nil }
func (*stateOrderer) Start(func(*broker.RemotePublish)) error          { return nil }
func (s *stateOrderer) State() broker.BackplaneState                   { return s.state }
func (s *stateOrderer) StartOrdered(func(*broker.RemotePublish)) error { return s.startErr }
func (*stateOrderer) Order(*broker.RemotePublish, func(error)) error {
	return errors.New("stateOrderer orders nothing")
}

// TestReady: a single broker is ready until it closes; a cluster node is
// not while it catches up or its link is down, nor when its SOW order did
// not start (StartErr says why), and catching up only counts when the
// node's SOW topics are ordered.
func TestReady(t *testing.T) {
	single := ampstest.NewBroker(t, nil)
	if err := single.Ready(); err != nil {
		t.Errorf("single broker: Ready %v; want nil", err)
	}
	single.Close()
	if err := single.Ready(); !errors.Is(err, broker.ErrBrokerClosed) {
		t.Errorf("closed broker: Ready %v; want ErrBrokerClosed", err)
	}

	// Closed after the brokers (cleanups run last first).
	j := broker.NewMemJournal(0, 0)
	t.Cleanup(func() { j.Close() })
	topics := []broker.SOWTopic{{Name: "positions", Keys: []string{"/id"}}}
	for _, c := range []struct {
		name string
		bp   *stateOrderer
		opts broker.Options
		want error
	}{
		{"caught up", &stateOrderer{state: broker.BackplaneState{Connected: true, Lag: 3}}, broker.Options{}, nil},
		{"catching up", &stateOrderer{state: broker.BackplaneState{Connected: true, CatchingUp: true}}, broker.Options{}, broker.ErrCatchingUp},
		{"link down", &stateOrderer{state: broker.BackplaneState{}}, broker.Options{}, broker.ErrClusterDown},
		{"order not started", &stateOrderer{state: broker.BackplaneState{Connected: true}, startErr: errors.New("no stream")}, broker.Options{}, broker.ErrClusterDown},
		// With a journal the SOW topics are in the order too.
		{"journaled", &stateOrderer{state: broker.BackplaneState{Connected: true, CatchingUp: true}}, broker.Options{Journal: j}, broker.ErrCatchingUp},
	} {
		opts := c.opts
		opts.Backplane, opts.SOWTopics = c.bp, topics
		b := ampstest.NewBroker(t, &ampstest.Options{Broker: &opts})
		err := b.Ready()
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: Ready %v; want %v", c.name, err, c.want)
		}
		if st := b.Stats().Cluster; (c.bp.startErr != nil) != (st.StartErr != nil) || c.bp.startErr != nil && !errors.Is(st.StartErr, c.bp.startErr) {
			t.Errorf("%s: StartErr %v; want it to wrap %v", c.name, st.StartErr, c.bp.startErr)
		}
	}
}
