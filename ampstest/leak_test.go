package ampstest

import (
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/listener"
)

// The leak check sees the goroutines of a serving broker and none after
// Stop.
func TestLeakCheckSeesServingBroker(t *testing.T) {
	b := NewBroker(t, nil)
	c := b.Dial(b.TCPURL(), nil)
	c.Logon("x")
	if len(brokerGoroutines()) == 0 {
		t.Fatal("no broker goroutine found while the broker serves")
	}
	c.Close()
	b.Stop()
	if left := leftGoroutines(DefaultLeakGrace); left != "" {
		t.Fatalf("goroutines left after Stop:\n%s", left)
	}

	// A broker that is never shut down is reported.
	leaky := broker.New(nil)
	l, err := listener.ListenTCP("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { leaky.Serve(l); close(done) }()
	// Wait for Serve to be running, so that the check below cannot look
	// before there is anything to find.
	for deadline := time.Now().Add(10 * time.Second); len(brokerGoroutines()) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the leaky broker's Serve never showed up among the goroutines")
		}
		time.Sleep(time.Millisecond)
	}
	if left := leftGoroutines(100 * time.Millisecond); left == "" {
		t.Error("a serving broker was not reported")
	}
	leaky.Close()
	<-done
}
