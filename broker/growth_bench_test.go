package broker

import (
	"context"
	"fmt"
	"testing"
)

// newSubscribingConn is a discardConn that subscribes to topic (an exact
// topic or a regular expression) as sub_id id.
func newSubscribingConn(id int, topic string) *discardConn {
	return &discardConn{
		script: [][2]string{
			{`{"c":"logon","cid":"0","client_name":"b","mt":"json","a":"processed"}`, ""},
			{fmt.Sprintf(`{"c":"subscribe","cid":"1","sub_id":"sub-%d","t":%q,"a":"processed"}`, id, topic), ""},
		},
		closed: make(chan struct{}),
	}
}

// growthSessions starts a session per conn on br and waits until each has
// written its logon and subscribe acks.
func growthSessions(br *Broker, conns []*discardConn) {
	for _, c := range conns {
		go br.ServeConn(context.Background(), c)
	}
	for _, c := range conns {
		for c.written.Load() < 2 {
		}
	}
}

// waitWritten spins until conns have written want messages in all
// (acks included), so that a publish is measured with its deliveries.
func waitWritten(conns []*discardConn, want int64) {
	for {
		var n int64
		for _, c := range conns {
			n += c.written.Load()
		}
		if n >= want {
			return
		}
	}
}

var growthBody = []byte(`{"id":1,"qty":5,"px":101.25}`)

// BenchmarkGrowthSubscribersPerTopic publishes to one topic that N
// sessions (discard connections, no sockets) subscribe to, and waits for
// every delivery to be written. ns/delivery (ns/op ÷ N) is flat if the
// cost of a delivery does not depend on how many share the topic.
func BenchmarkGrowthSubscribersPerTopic(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			br := New(&Options{OutboundQueueBytes: 1 << 30})
			defer br.Close()
			conns := make([]*discardConn, n)
			for i := range conns {
				conns[i] = newSubscribingConn(i, "orders")
			}
			growthSessions(br, conns)
			pub := br.newEndpoint(0, 0)
			r := br.router("json")
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				br.publish(&pub, r, "orders", nil, growthBody)
			}
			waitWritten(conns, int64(n)*int64(b.N+2))
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
		})
	}
}

// BenchmarkGrowthDistinctTopics publishes to N distinct topics in turn
// (1 to 100,000), with 100 regex subscriptions (one per session) that take
// every topic, each by exactly one subscription (one delivery per
// publish; ns/delivery is ns/op), or that take none of them, or with no
// subscription at all, with the default topic cache, which holds them
// all (DefaultTopicCacheSize). Published in a fixed cycle, more topics
// than the cache holds would be the worst case for any cache: part of the
// publishes would find their topic evicted and match it again (see
// router.evictOne and the routing benchmarks, which measure that).
func BenchmarkGrowthDistinctTopics(b *testing.B) {
	for _, subs := range []string{"regex100-match-one", "regex100-match-none", "no-subs"} {
		for _, ntopics := range []int{1, 1000, 10000, 100000} {
			b.Run(fmt.Sprintf("%s/topics=%d", subs, ntopics), func(b *testing.B) {
				growthDistinctTopics(b, subs, ntopics)
			})
		}
	}
}

func growthDistinctTopics(b *testing.B, subs string, ntopics int) {
	topics := routeBenchTopics(ntopics)
	br := New(&Options{OutboundQueueBytes: 1 << 30})
	defer br.Close()
	var conns []*discardConn
	if subs != "no-subs" {
		for i, s := range benchRegexSubs(100, subs == "regex100-match-one", nil) {
			conns = append(conns, newSubscribingConn(i, s.topic))
		}
	}
	growthSessions(br, conns)
	pub := br.newEndpoint(0, 0)
	r := br.router("json")
	for _, t := range topics { // warm the topic cache
		r.routes(t)
	}
	perPublish := int64(0)
	if subs == "regex100-match-one" {
		perPublish = 1
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		br.publish(&pub, r, topics[i%ntopics], nil, growthBody)
	}
	waitWritten(conns, 2*int64(len(conns))+perPublish*int64(b.N))
	b.StopTimer()
}

// BenchmarkGrowthNonMatchingSubscriptions publishes to "orders", which one
// session subscribes to, while N other subscriptions sit on N other exact
// topics (all cached, up to the cache size). The cost of a publish should
// not depend on N.
func BenchmarkGrowthNonMatchingSubscriptions(b *testing.B) {
	for _, n := range []int{0, 1000, 100000} {
		b.Run(fmt.Sprintf("others=%d", n), func(b *testing.B) {
			br := New(&Options{OutboundQueueBytes: 1 << 30})
			defer br.Close()
			conns := []*discardConn{newSubscribingConn(0, "orders")}
			growthSessions(br, conns)
			r := br.router("json")
			other := br.newEndpoint(0, 0)
			for i := 0; i < n; i++ {
				t := fmt.Sprintf("other.%06d", i)
				r.add(&subscription{id: fmt.Sprint("o-", i), topic: t, owner: &other})
				r.routes(t)
			}
			pub := br.newEndpoint(0, 0)
			br.publish(&pub, r, "orders", nil, growthBody) // caches "orders" if it was evicted
			waitWritten(conns, 3)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				br.publish(&pub, r, "orders", nil, growthBody)
			}
			waitWritten(conns, int64(b.N+3))
			b.StopTimer()
		})
	}
}
