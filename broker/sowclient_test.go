package broker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
)

// An in-process client whose queue overflows while it runs a
// SOWAndSubscribe is closed, and the call returns (it used to deadlock on
// the client's own lock).
func TestSOWAndSubscribeOnAFullQueueReturns(t *testing.T) {
	b := broker.New(&broker.Options{SOWTopics: []broker.SOWTopic{{Name: "orders", Keys: []string{"/id"}}}})
	defer b.Close()
	ctx := context.Background()
	pub, _ := b.Connect(ctx, "pub", nil)
	for i := 0; i < 1000; i++ {
		pub.Publish(ctx, "orders", []byte(fmt.Sprintf(`{"id":%d,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}`, i)))
	}
	c, _ := b.Connect(ctx, "small", &broker.ClientOptions{QueueBytes: 4096})
	block := make(chan struct{})
	defer close(block)
	c.Subscribe(ctx, "plain", func(broker.Message) { <-block }, nil)
	pub.Publish(ctx, "plain", []byte(`{}`))
	pub.Publish(ctx, "plain", []byte(`{}`))
	done := make(chan error, 1)
	go func() {
		_, err := c.SOWAndSubscribe(ctx, "orders", func(broker.Message) {}, nil)
		done <- err
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("SOWAndSubscribe on an overflowing client did not return")
	}
}
