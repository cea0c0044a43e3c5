package broker

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"testing"
)

// benchTopicCounts are the numbers of distinct topics the routing
// benchmarks cycle through. 100,000 is more than evictionBenchCacheSize,
// so at that size cached routes are evicted and rebuilt while the
// benchmark runs: that is the shape being measured, not an accident.
var benchTopicCounts = []int{1, 1000, 100000}

// evictionBenchCacheSize is the topic cache of the routing benchmarks,
// smaller than their largest topic count so that they measure eviction
// (DefaultTopicCacheSize holds 100,000 topics; the growth benchmarks use
// it).
const evictionBenchCacheSize = 64 << 10

// routeBenchTopics returns n distinct topic names "t.00000", "t.00001", ….
func routeBenchTopics(n int) []string {
	ts := make([]string, n)
	for i := range ts {
		ts[i] = fmt.Sprintf("t.%05d", i)
	}
	return ts
}

// benchRegexSubs returns n regex subscriptions owned by ep. With match set,
// subscription i takes the topics whose last two digits are i, so every
// topic of routeBenchTopics is taken by exactly one of 100 subscriptions; without
// it, none takes any of them.
func benchRegexSubs(n int, match bool, ep *endpoint) []*subscription {
	prefix := "x"
	if match {
		prefix = "t"
	}
	subs := make([]*subscription, n)
	for i := range subs {
		topic := fmt.Sprintf(`^%s\.\d{3}%02d$`, prefix, i%100)
		subs[i] = &subscription{id: fmt.Sprint("re-", i), topic: topic, re: regexp.MustCompile(topic), owner: ep}
	}
	return subs
}

// BenchmarkRouterRoutes measures router.routes, the lookup every publish
// makes, cycling through N distinct topics.
//
// exact: each topic has one exact subscription (N topics, N
// subscriptions). regex: 100 regex subscriptions and no exact ones; every
// topic is taken by one of them. Up to the cache size a lookup is one map
// read under a read lock; past it (topics=100000) a lookup may find its
// topic evicted and rebuild its routes (a scan of the exact map entry and
// of every regex subscription), then evict another topic.
func BenchmarkRouterRoutes(b *testing.B) {
	ep := &endpoint{}
	for _, kind := range []string{"exact", "regex"} {
		for _, n := range benchTopicCounts {
			b.Run(fmt.Sprintf("%s/topics=%d", kind, n), func(b *testing.B) {
				r := newRouter("json", evictionBenchCacheSize)
				topics := routeBenchTopics(n)
				if kind == "exact" {
					for i, t := range topics {
						r.add(&subscription{id: fmt.Sprint("s-", i), topic: t, owner: ep})
					}
				} else {
					for _, s := range benchRegexSubs(100, true, ep) {
						r.add(s)
					}
				}
				for _, t := range topics { // warm the cache
					r.routes(t)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if rs := r.routes(topics[i%n]); len(rs.targets) != 1 {
						b.Fatalf("topic %s: %d targets, want 1", topics[i%n], len(rs.targets))
					}
				}
			})
		}
	}
}

// BenchmarkRouterEviction looks up topics drawn from a skewed (Zipf)
// distribution over 1,000,000 topics, 100 regex subscriptions, with the
// cache of evictionBenchCacheSize topics: a few topics are published very often,
// most rarely, as on a real broker. misses/op is the share of lookups that
// found their topic evicted. The cyclic sweep of BenchmarkRouterRoutes at
// 100,000 topics is the other extreme (every topic equally often, in a
// fixed order): there any policy that keeps recently read topics misses
// every time.
func BenchmarkRouterEviction(b *testing.B) {
	const ntopics = 1000000
	topics := make([]string, ntopics)
	for i := range topics {
		topics[i] = fmt.Sprintf("t.%07d", i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	z := rand.NewZipf(rand.New(rand.NewPCG(3, 4)), 1.1, 1, ntopics-1)
	seq := make([]string, 1<<20)
	for i := range seq {
		// The ranks are scattered over the topic names so that hot topics
		// are not neighbours.
		seq[i] = topics[(z.Uint64()*7919+uint64(rng.IntN(1)))%ntopics]
	}
	r := newRouter("json", evictionBenchCacheSize)
	for i := 0; i < 100; i++ {
		topic := fmt.Sprintf(`^t\.\d{5}%02d$`, i)
		r.add(&subscription{id: fmt.Sprint("re-", i), topic: topic, re: regexp.MustCompile(topic), owner: &endpoint{}})
	}
	for _, t := range seq { // warm the cache
		r.routes(t)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.routes(seq[i%len(seq)])
	}
}

// BenchmarkRouterRoutesUncached measures the lookup of a topic that is not
// cached (a cache of one topic, two topics alternating), with N regex
// subscriptions, each for the topics of one desk ("^desk17\.orders\."):
// exactly one takes each topic. Before the literal-bounds index every
// regex ran on every miss.
func BenchmarkRouterRoutesUncached(b *testing.B) {
	ep := &endpoint{}
	for _, n := range benchTopicCounts {
		b.Run(fmt.Sprintf("regex/subscriptions=%d", n), func(b *testing.B) {
			r := newRouter("json", 1)
			for i := 0; i < n; i++ {
				topic := fmt.Sprintf(`^desk%d\.orders\.`, i)
				r.add(&subscription{id: fmt.Sprint("re-", i), topic: topic, re: regexp.MustCompile(topic), owner: ep})
			}
			topics := []string{"desk0.orders.eu", fmt.Sprintf("desk%d.orders.us", n-1)}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if rs := r.routes(topics[i%2]); len(rs.targets) != 1 {
					b.Fatalf("topic %s: %d targets, want 1", topics[i%2], len(rs.targets))
				}
			}
		})
	}
}

// BenchmarkRouterSubscribe measures N subscribers (one connection each)
// joining one cached topic, then leaving it: ns/subscriber is the cost
// of one add and one remove. It is flat when a join does not regroup the
// topic's earlier subscribers.
func BenchmarkRouterSubscribe(b *testing.B) {
	for _, n := range []int{1, 1000, 10000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			subs := make([]*subscription, n)
			for i := range subs {
				subs[i] = &subscription{id: fmt.Sprint("s-", i), topic: "orders", owner: &endpoint{}}
			}
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				r := newRouter("json", evictionBenchCacheSize)
				r.routes("orders")
				for _, s := range subs {
					r.add(s)
				}
				r.remove(subs...)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/subscriber")
		})
	}
}

// BenchmarkRouterRegexUnsubscribe adds and removes one regex subscription
// that takes one topic while N topics are cached: before the reverse
// index, removing it visited every cached topic.
func BenchmarkRouterRegexUnsubscribe(b *testing.B) {
	for _, n := range []int{1, 1000, 65536} {
		b.Run(fmt.Sprintf("cached=%d", n), func(b *testing.B) {
			r := newRouter("json", evictionBenchCacheSize)
			topics := routeBenchTopics(n)
			for _, t := range topics {
				r.routes(t)
			}
			ep := &endpoint{}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s := &subscription{id: "re", topic: `^t\.00000$`, re: regexp.MustCompile(`^t\.00000$`), owner: ep}
				r.add(s)
				r.remove(s)
			}
		})
	}
}

// BenchmarkRouterRoutesParallel looks up one topic from every core at
// once, as concurrent publishers to a hot topic do: the lookup's shared
// writes (the reference bit, written only when clear, and the topic's
// routed counter) are what it shows.
func BenchmarkRouterRoutesParallel(b *testing.B) {
	r := newRouter("json", evictionBenchCacheSize)
	r.add(&subscription{id: "s", topic: "hot", owner: &endpoint{}})
	r.routes("hot")
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if rs := r.routes("hot"); len(rs.targets) != 1 {
				b.Errorf("hot: %d targets, want 1", len(rs.targets))
				return
			}
		}
	})
}
