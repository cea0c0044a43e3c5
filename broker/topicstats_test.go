package broker_test

import (
	"context"
	"testing"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/google/go-cmp/cmp"
)

func TestBusiestTopics(t *testing.T) {
	b := broker.New(nil)
	defer b.Close()
	ctx := context.Background()
	pub, err := b.Connect(ctx, "pub", nil)
	if err != nil {
		t.Fatal(err)
	}
	for topic, n := range map[string]int{"a": 5, "b": 2, "c": 1, "d": 2} {
		for range n {
			if err := pub.Publish(ctx, topic, []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := []broker.TopicTraffic{
		{Topic: "a", MessageType: "json", Messages: 5},
		{Topic: "b", MessageType: "json", Messages: 2}, // ties by name
		{Topic: "d", MessageType: "json", Messages: 2},
	}
	if diff := cmp.Diff(want, b.BusiestTopics(3)); diff != "" {
		t.Errorf("BusiestTopics(3) (-want +got):\n%s", diff)
	}
	if got := b.BusiestTopics(10); len(got) != 4 || got[3].Topic != "c" {
		t.Errorf("BusiestTopics(10) = %v, want all four, c last", got)
	}
	if got := b.BusiestTopics(0); got != nil {
		t.Errorf("BusiestTopics(0) = %v", got)
	}
	// An entitlement reset drops the routing cache: the counts start over.
	b.ResetAllEntitlements()
	if got := b.BusiestTopics(10); len(got) != 0 {
		t.Errorf("after a cache reset: %v", got)
	}
}
