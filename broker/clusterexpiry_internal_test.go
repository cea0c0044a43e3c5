package broker

import (
	"sync"
	"testing"
	"time"
)

// heldOrder is a SOWOrderer that keeps what Order is given and applies
// only what the test hands to its apply, so a test decides the order.
type heldOrder struct {
	mu     sync.Mutex
	got    []RemotePublish
	apply  func(*RemotePublish)
	behind bool // reported as CatchingUp
}

func (o *heldOrder) Publish(*RemotePublish) error                  { return nil }
func (o *heldOrder) Start(func(*RemotePublish)) error              { return nil }
func (o *heldOrder) StartOrdered(apply func(*RemotePublish)) error { o.apply = apply; return nil }
func (o *heldOrder) State() BackplaneState {
	o.mu.Lock()
	defer o.mu.Unlock()
	return BackplaneState{Connected: true, CatchingUp: o.behind}
}
func (o *heldOrder) Order(p *RemotePublish, done func(error)) error {
	o.mu.Lock()
	o.got = append(o.got, *p)
	o.mu.Unlock()
	done(nil)
	return nil
}

func (o *heldOrder) setBehind(v bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.behind = v
}

// take returns and forgets what Order was given.
func (o *heldOrder) take() []RemotePublish {
	o.mu.Lock()
	defer o.mu.Unlock()
	got := o.got
	o.got = nil
	return got
}

// On an ordered node a record's lifetime runs from the order's time, the
// janitor asks the order to expire the record's version instead of
// removing it (again after expireRetry, not before), and the request
// removes the record only if no update was ordered before it.
func TestOrderedExpiryByVersion(t *testing.T) {
	o := &heldOrder{}
	b := New(&Options{Backplane: o, SOWTopics: []SOWTopic{{Name: "t", Keys: []string{"/id"}, Expiration: time.Hour}}})
	defer b.Close()
	if b.cluster.orderer == nil {
		t.Fatal("the SOW order did not start")
	}
	now := time.Now()
	then := now.Add(-2 * time.Hour) // the record expired an hour ago
	o.apply(&RemotePublish{MessageType: DefaultSOWMessageType, Topic: "t", Ordinal: 7, OrderTime: then, Body: []byte(`{"id":1}`)})
	st := b.sow.store("t", DefaultSOWMessageType)
	rec := func() *record {
		st.mu.Lock()
		defer st.mu.Unlock()
		for _, r := range st.recs {
			return r
		}
		return nil
	}
	if r := rec(); r == nil || r.ver != 7 || r.at != then.UnixNano() || r.exp != then.Add(time.Hour).UnixNano() {
		t.Fatalf("applied record %+v; want version 7, stamped with the order's time", r)
	}

	o.setBehind(true)
	b.expireRecords(now.UnixNano())
	if got := o.take(); len(got) != 0 {
		t.Fatalf("a node catching up asked to expire %+v", got)
	}
	o.setBehind(false)
	b.expireRecords(now.Add(janitorTick).UnixNano())
	reqs := o.take()
	if len(reqs) != 1 || !reqs[0].Expire || reqs[0].ExpireVersion != 7 || reqs[0].SOWKey != rec().key || reqs[0].Topic != "t" {
		t.Fatalf("expire requests %+v; want one for version 7 of the record", reqs)
	}
	if rec() == nil {
		t.Fatal("the janitor removed the record itself")
	}
	b.expireRecords(now.Add(janitorTick + expireRetry/2).UnixNano())
	if got := o.take(); len(got) != 0 {
		t.Fatalf("asked again before expireRetry: %+v", got)
	}
	b.expireRecords(now.Add(janitorTick + expireRetry).UnixNano())
	if got := o.take(); len(got) != 1 || got[0].ExpireVersion != 7 {
		t.Fatalf("after expireRetry the janitor asked %+v; want version 7 again", got)
	}

	// An update ordered before the request: the request does nothing.
	o.apply(&RemotePublish{MessageType: DefaultSOWMessageType, Topic: "t", Ordinal: 8, OrderTime: now, Body: []byte(`{"id":1,"n":2}`)})
	o.apply(&reqs[0])
	if r := rec(); r == nil || r.ver != 8 {
		t.Fatalf("after an update and a stale expire request the record is %+v; want version 8", r)
	}
	// A request for the current version removes it.
	req := reqs[0]
	req.ExpireVersion = 8
	o.apply(&req)
	if r := rec(); r != nil {
		t.Fatalf("the expire request for the record's version left %+v", r)
	}
	if n := b.expiry.len(); n != 0 {
		t.Fatalf("the expiry heap holds %d keys after the record expired", n)
	}
	s := b.Stats().Cluster
	if s.Expired != 1 || s.ExpireStale != 1 || s.ExpireRequests != 2 || s.Applied != 2 {
		t.Fatalf("stats %+v; want 1 expired, 1 stale, 2 requests, 2 publishes applied", s.ClusterExpiryStats)
	}
}
