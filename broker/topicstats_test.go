package broker_test

import (
	"context"
	"testing"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/google/go-cmp/cmp"
)

func TestBusiestTopics(t *testing.T) {
	b := broker.New(&broker.Options{SOWTopics: []broker.SOWTopic{{Name: "s", Keys: []string{"/id"}}}})
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
	// A SOW topic counts each stored publish once (its publish looks the
	// routes up twice).
	for _, body := range []string{`{"id":1}`, `{"id":2}`, `{"id":1,"v":2}`} {
		if err := pub.Publish(ctx, "s", []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	want := []broker.TopicTraffic{
		{Topic: "a", MessageType: "json", Messages: 5},
		{Topic: "s", MessageType: "json", Messages: 3},
		{Topic: "b", MessageType: "json", Messages: 2}, // ties by name
		{Topic: "d", MessageType: "json", Messages: 2},
	}
	if diff := cmp.Diff(want, b.BusiestTopics(4)); diff != "" {
		t.Errorf("BusiestTopics(4) (-want +got):\n%s", diff)
	}
	if got := b.BusiestTopics(10); len(got) != 5 || got[4].Topic != "c" {
		t.Errorf("BusiestTopics(10) = %v, want all five, c last", got)
	}
	if got := b.BusiestTopics(0); got != nil {
		t.Errorf("BusiestTopics(0) = %v", got)
	}
	// An entitlement reset drops the routing cache: the counts start over.
	b.ResetAllEntitlements()
	if got := b.BusiestTopics(10); len(got) != 0 {
		t.Errorf("after a cache reset: %v", got)
	}
	if err := pub.Publish(ctx, "a", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if got := b.BusiestTopics(10); len(got) != 1 || got[0].Messages != 1 {
		t.Errorf("after one more publish: %v, want a with 1", got)
	}
}
