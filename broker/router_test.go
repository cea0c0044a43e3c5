package broker

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ampsbroker/ampsbroker/protocol"
)

// nopEndpoint is an endpoint for router tests; nothing is ever queued on it.
func nopEndpoint() *endpoint { return &endpoint{} }

func sids(ts []target) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.sids.String())
	}
	slices.Sort(out)
	return out
}

func mustSub(t *testing.T, id, topic string, ep *endpoint) *subscription {
	t.Helper()
	s, reason := newSubscription(id, topic, false, DefaultMaxRegexProgram)
	if reason != "" {
		t.Fatalf("%s: %s", topic, reason)
	}
	s.owner = ep
	return s
}

func TestRouterKeepsCacheCurrent(t *testing.T) {
	r := newRouter("json", 0)
	a, b := nopEndpoint(), nopEndpoint()
	// Warm the cache before any subscription exists.
	if got := r.routes("orders/eu").targets; len(got) != 0 {
		t.Fatalf("empty router matched %v", got)
	}
	exact := mustSub(t, "e", "orders/eu", a)
	rx := mustSub(t, "r", "^orders/", a)
	other := mustSub(t, "o", "eu$", b)
	r.add(exact)
	r.add(rx)
	r.add(other)
	if got, want := sids(r.routes("orders/eu").targets), []string{`e,r`, `o`}; !slices.Equal(got, want) {
		t.Fatalf("targets = %v, want %v", got, want)
	}
	if got, want := sids(r.routes("orders/us").targets), []string{`r`}; !slices.Equal(got, want) {
		t.Fatalf("targets = %v, want %v", got, want)
	}
	r.remove(rx)
	if got, want := sids(r.routes("orders/eu").targets), []string{`e`, `o`}; !slices.Equal(got, want) {
		t.Fatalf("after remove: %v, want %v", got, want)
	}
	if got := r.routes("orders/us").targets; len(got) != 0 {
		t.Fatalf("removed regex still matches: %v", sids(got))
	}
	r.replace(exact, mustSub(t, "e", "orders/us", a))
	if got, want := sids(r.routes("orders/us").targets), []string{`e`}; !slices.Equal(got, want) {
		t.Fatalf("after replace: %v, want %v", got, want)
	}
}

func TestRouterCacheIsBounded(t *testing.T) {
	r := newRouter("json", 8)
	r.add(mustSub(t, "r", "x", nopEndpoint()))
	r.routes("x")
	for i := 0; i < 100; i++ {
		r.routes(string(rune('a'+i%26)) + string(rune('a'+i/26)))
	}
	if len(r.cache) > 8 {
		t.Fatalf("cache holds %d topics, bound is 8", len(r.cache))
	}
	if got := r.routes("x").targets; len(got) != 1 {
		t.Fatalf("evicted topic not recomputed: %v", got)
	}
}

func TestSplitOptions(t *testing.T) {
	for in, want := range map[string][]string{
		"replace, select=[-/a,+/b] ,oof,,conflation=1s": {"replace", "select=[-/a,+/b]", "oof", "conflation=1s"},
		`projection=[CONCAT(/a, ',') AS /b, /k],oof`:    {`projection=[CONCAT(/a, ',') AS /b, /k]`, "oof"},
		`grouping=[/a],x="a,b]",y='it\'s,',z`:           {"grouping=[/a]", `x="a,b]"`, `y='it\'s,'`, "z"},
		"":                                              nil,
		" , ":                                           nil,
	} {
		if got := splitOptions(in); !slices.Equal(got, want) {
			t.Errorf("splitOptions(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseAcks(t *testing.T) {
	if got := parseAcks("processed, completed,bogus,parsed"); got != ackProcessed|ackCompleted|ackReceived {
		t.Fatalf("got %b", got)
	}
	if parseAcks("") != 0 || parseAcks("none") != 0 {
		t.Fatal("empty or none requested acks")
	}
}

func TestResolveMessageType(t *testing.T) {
	for _, tc := range []struct {
		logon, path, transport string
		want, reason           string
	}{
		{"json", "", "", "json", ""},
		{"", "nvfix", "", "nvfix", ""},                // WebSocket or preflight path
		{"json", "xml", "", "json", ""},               // the logon's mt comes first
		{"", "", "json", "json", ""},                  // the transport's type
		{"json", "", "json", "json", ""},              // asking for it explicitly
		{"", "nvfix", "json", "", ReasonTypeMismatch}, // path asks for another
		{"xml", "", "json", "", ReasonTypeMismatch},   // logon asks for another
		{"", "", "", "", ReasonMessageType},           // nobody says
		{"yaml", "", "", "", ReasonUnknownType},       // not a built-in type
	} {
		mt, reason := resolveMessageType(tc.logon, tc.path, tc.transport)
		if mt != tc.want || reason != tc.reason {
			t.Errorf("resolveMessageType(%q, %q, %q) = %q, %q; want %q, %q", tc.logon, tc.path, tc.transport, mt, reason, tc.want, tc.reason)
		}
	}
}

// A burst's large batch slice is let go once traffic falls off, and every
// queued message is charged its bookkeeping as well as its bytes.
func TestOutboundMemoryIsBounded(t *testing.T) {
	q := newOutbound(1 << 30)
	var spare []outItem
	burst := func(n int) {
		for i := 0; i < n; i++ {
			q.push(outItem{m: &heartbeatMessage, size: heartbeatMessage.Len() + itemOverhead})
		}
		items, _ := q.take(spare)
		q.release(len(items)*(heartbeatMessage.Len()+itemOverhead), 0, 0)
		spare = clearItems(items)
	}
	burst(100000)
	if cap(spare) < 100000 {
		t.Fatalf("a busy batch should be reused, cap %d", cap(spare))
	}
	burst(10)
	burst(10)
	if cap(spare) > retainItems || cap(q.items) > retainItems {
		t.Fatalf("quiet batches keep slices of %d and %d items", cap(spare), cap(q.items))
	}
	d := newDelivery("t", "", "", nil)
	if d.size(&target{sids: protocol.NewSubIDs("s")}) < itemOverhead {
		t.Fatal("an empty delivery is charged less than its bookkeeping")
	}
	// 1 MiB of budget holds at most about 1 MiB / itemOverhead empty
	// messages, not millions.
	q = newOutbound(1 << 20)
	n := 0
	for q.push(outItem{d: d, size: d.size(&target{})}) == pushOK {
		n++
	}
	if n > (1<<20)/itemOverhead {
		t.Fatalf("%d empty messages fit a 1 MiB budget", n)
	}
}

func TestRegexProgramSizeLimit(t *testing.T) {
	for _, topic := range []string{`^orders\.`, `.*_ORDERS`, `(?i)^(trades|quotes)/[a-z]{2,8}/eu$`, `trade.info`} {
		if _, reason := newSubscription("s", topic, false, DefaultMaxRegexProgram); reason != "" {
			t.Errorf("%q refused: %s (program size %d)", topic, reason, regexProgramSize(topic))
		}
	}
	heavy := strings.Repeat(`(?:[^#]?){1000}`, 3)
	if _, reason := newSubscription("s", heavy, false, DefaultMaxRegexProgram); reason != ReasonBadRegexTopic {
		t.Errorf("heavy regex (program size %d) accepted", regexProgramSize(heavy))
	}
}

// A topic's routes carry an extractor only while a subscription on it has
// a filter: unfiltered topics cost a publish no scan. The extractor reads
// the union of the filters' fields, each named once.
func TestRouterExtractsOnlyForFilteredTopics(t *testing.T) {
	r := newRouter("json", 0)
	ep := nopEndpoint()
	r.add(mustSub(t, "plain", "t", ep))
	if rs := r.routes("t"); rs.ex != nil || rs.targets[0].match != nil {
		t.Fatal("routes of an unfiltered topic carry an extractor")
	}
	var filtered []*subscription
	for i, src := range []string{"/a = 1 AND /b/c > 2", "/b/c < 9 OR /d IS NULL"} {
		s := mustSub(t, "f"+strconv.Itoa(i), "t", ep)
		f, err := r.compileFilter(src)
		if err != nil {
			t.Fatal(err)
		}
		s.filter = f
		r.add(s)
		filtered = append(filtered, s)
	}
	rs := r.routes("t")
	if rs.ex == nil || rs.ex.Len() != 3 {
		t.Fatalf("extractor over the filters' fields: got %v, want 3 paths (/a, /b/c, /d)", rs.ex)
	}
	if m := rs.targets[0].match; !slices.Equal(m, []int32{-1, 0, 1}) || len(rs.matchers) != 2 {
		t.Fatalf("matchers: got %v of %d, want none for the unfiltered subscription and one per filter", m, len(rs.matchers))
	}
	// Another subscription with the text of an existing filter shares its
	// matcher, so the filter is evaluated once per message.
	same := mustSub(t, "same", "t", nopEndpoint())
	same.filter, _ = r.compileFilter("/a = 1 AND /b/c > 2")
	r.add(same)
	if rs := r.routes("t"); len(rs.matchers) != 2 || !slices.Equal(rs.targets[1].match, []int32{0}) {
		t.Fatalf("same filter text: %d matchers, match %v; want 2 and [0]", len(rs.matchers), rs.targets[1].match)
	}
	r.remove(same)
	for _, s := range filtered {
		r.remove(s)
	}
	if rs := r.routes("t"); rs.ex != nil {
		t.Fatal("extractor kept after the filtered subscriptions left")
	}
}

// A topic's extractor is kept while it has every field the filters name
// (a new filter is bound to it, the others keep their bindings), replaced
// when a filter needs a field it lacks, and rebuilt smaller when most
// filters have left.
func TestRouterRebindsOnlyWhatChanged(t *testing.T) {
	r := newRouter("json", 0)
	ep := nopEndpoint()
	sub := func(id, src string) *subscription {
		s := mustSub(t, id, "t", ep)
		f, err := r.compileFilter(src)
		if err != nil {
			t.Fatal(err)
		}
		s.filter = f
		r.add(s)
		return s
	}
	a := sub("a", "/x = 1 AND /y = 2")
	r.routes("t") // the topic is cached from now on
	first := r.cache["t"]
	exA, mA := first.ex, first.bound[a]
	sub("b", "/y > 5")
	if e := r.cache["t"]; e.ex != exA || e.bound[a] != mA {
		t.Fatal("a filter over known fields replaced the extractor or rebound the others")
	}
	many := []*subscription{}
	for i := 0; i < 20; i++ {
		many = append(many, sub("m"+strconv.Itoa(i), "/f"+strconv.Itoa(i)+" = 1"))
	}
	e := r.cache["t"]
	if e.ex == exA || e.ex.Len() != 22 {
		t.Fatalf("new fields: extractor has %d paths, want a new one with 22", e.ex.Len())
	}
	r.remove(many...)
	if e := r.cache["t"]; e.ex.Len() != 2 || len(e.bound) != 2 || len(e.routes.targets[0].subs) != 2 {
		t.Fatalf("after the many left: %d paths, %d bound filters, %d subscriptions; want 2, 2, 2", e.ex.Len(), len(e.bound), len(e.routes.targets[0].subs))
	}
}

// The literal bounds of a regex are text the topics it matches must
// start and end with; a bound is left empty rather than guessed.
func TestRegexBounds(t *testing.T) {
	for expr, want := range map[string]literalBounds{
		`^orders\.[a-z]+\.eu$`:   {"orders.", ".eu"},
		`^t\.\d{3}05$`:           {"t.", "05"},
		`\Aabc\z`:                {"abc", "abc"},
		`^orders/`:               {"orders/", ""},
		`_ORDERS$`:               {"", "_ORDERS"},
		`.*_ORDERS`:              {"", ""}, // no end anchor
		`orders`:                 {"", ""}, // may occur anywhere
		`(?i)^orders`:            {"", ""}, // case folded
		`(?m)^orders$`:           {"", ""}, // line anchors
		`^(orders|trades)/eu$`:   {"", "/eu"},
		`^a|^b`:                  {"", ""},
		"^caf\u00e9\\.x":         {"caf\u00e9.x", ""},
		"^a\ufffdb":              {"", ""}, // U+FFFD also matches a non-UTF-8 byte
		`^$`:                     {"", ""},
		`^/AMPS/ClientStatus$`:   {"/AMPS/ClientStatus", "/AMPS/ClientStatus"},
		`^orders\.(?:eu|us)\.x$`: {"orders.", ".x"},
	} {
		if got := regexBounds(expr); got != want {
			t.Errorf("regexBounds(%q) = %+v, want %+v", expr, got, want)
		}
	}
	// Whatever the bounds, a topic they refuse is one the regex does not
	// match.
	exprs := []string{`^orders\.[a-z]+\.eu$`, `^t\.\d{3}05$`, `_ORDERS$`, `^(a|ab)c$`, `^ab*c`, `^a\.b`, "^\u00e9", `^x$`}
	topics := []string{"", "orders.fr.eu", "orders..eu", "t.12305", "t.1230", "A_ORDERS", "abc", "ac", "abbbc", "a.b", "axb", "\u00e9", "\xc3", "x", "x\n"}
	for _, expr := range exprs {
		re, b := regexp.MustCompile(expr), regexBounds(expr)
		for _, topic := range topics {
			if re.MatchString(topic) && !b.admit(topic) {
				t.Errorf("%q matches %q, which its bounds %+v refuse", expr, topic, b)
			}
		}
	}
}

// bruteForce is what routes(topic) must hold: the topic's exact
// subscriptions and every regex subscription that takes it, as sorted ids.
func bruteForce(exact map[string][]*subscription, regex []*subscription, topic string) []string {
	var ids []string
	for _, s := range exact[topic] {
		ids = append(ids, s.id)
	}
	for _, s := range regex {
		if s.matchesTopic(topic) {
			ids = append(ids, s.id)
		}
	}
	slices.Sort(ids)
	return ids
}

func routedIDs(rs *routes) []string {
	var ids []string
	for _, tg := range rs.targets {
		for _, s := range tg.subs {
			ids = append(ids, s.id)
		}
	}
	slices.Sort(ids)
	return ids
}

// checkCache checks the router's cache bookkeeping: the ring and the map
// hold the same entries, each knows its slot, the bound holds, and each
// regex subscription's reverse index lists every cached topic it is in
// and is at most about twice as long as that.
func checkCache(t *testing.T, r *router) {
	t.Helper()
	if len(r.ring) != len(r.cache) || len(r.refs) != len(r.ring) || len(r.cache) > r.cacheSize {
		t.Fatalf("ring %d, refs %d, map %d entries, bound %d", len(r.ring), len(r.refs), len(r.cache), r.cacheSize)
	}
	in := make(map[*subscription]int)
	for i, e := range r.ring {
		if r.cache[e.topic] != e || e.slot != int32(i) || e.evicted {
			t.Fatalf("ring slot %d: topic %q, slot %d, evicted %v, in map %v", i, e.topic, e.slot, e.evicted, r.cache[e.topic] == e)
		}
		for _, s := range e.subs {
			if s.re != nil {
				in[s]++
				if !slices.Contains(s.cachedIn, e) {
					t.Fatalf("regex %s is in cached topic %q, which its reverse index lacks", s.id, e.topic)
				}
			}
		}
	}
	for s := range r.regex {
		if len(s.cachedIn) > 2*in[s]+1 {
			t.Fatalf("regex %s: reverse index of %d for %d cached topics", s.id, len(s.cachedIn), in[s])
		}
	}
}

// Subscriptions added and removed while many topics are cached, some
// evicted and cached again, are seen (or no longer seen) by the next
// publish to every topic; so after the entitlement reset drops the cache.
func TestRouterCacheChurn(t *testing.T) {
	const ntopics, cacheSize = 300, 64
	r := newRouter("json", cacheSize)
	topics := make([]string, ntopics)
	for i := range topics {
		topics[i] = fmt.Sprintf("orders.%s.%03d", []string{"eu", "us", "asia"}[i%3], i)
	}
	eps := []*endpoint{nopEndpoint(), nopEndpoint(), nopEndpoint()}
	exact := make(map[string][]*subscription)
	var regex []*subscription
	n := 0
	newID := func() string { n++; return "s" + strconv.Itoa(n) }
	backward := slices.Clone(topics)
	slices.Reverse(backward)
	verify := func(step string) {
		t.Helper()
		for _, order := range [][]string{topics, backward} {
			for _, topic := range order {
				if got, want := routedIDs(r.routes(topic)), bruteForce(exact, regex, topic); !slices.Equal(got, want) {
					t.Fatalf("%s: topic %s routes to %v, want %v", step, topic, got, want)
				}
			}
			checkCache(t, r)
		}
	}
	verify("empty")
	patterns := []string{`^orders\.eu\.`, `^orders\.(eu|us)\.0[0-4]\d$`, `\.1\d\d$`, `us.`, `^orders\.asia\.2`, `.*`, `^nomatch`}
	for i, p := range patterns {
		s := mustSub(t, newID(), p, eps[i%len(eps)])
		r.add(s)
		regex = append(regex, s)
		verify("add " + p)
		// An exact subscriber joins a cached topic, one of a new
		// connection and one of a connection already there.
		topic := topics[(i*37)%ntopics]
		for _, ep := range []*endpoint{nopEndpoint(), eps[0]} {
			e := mustSub(t, newID(), topic, ep)
			r.add(e)
			exact[topic] = append(exact[topic], e)
		}
		verify("add exact on " + topic)
	}
	// Remove every other regex subscription, then one exact subscription
	// per topic that has them, in one call as a closing connection does.
	for i := 0; i < len(regex); i++ {
		r.remove(regex[i])
		regex = slices.Delete(regex, i, i+1)
		verify("remove regex")
	}
	var gone []*subscription
	for topic, subs := range exact {
		gone = append(gone, subs[0])
		exact[topic] = subs[1:]
	}
	r.remove(gone...)
	verify("remove exact")
	r.resetCache()
	checkCache(t, r)
	old := regex[0]
	s := mustSub(t, newID(), `^orders\.us\.`, eps[1])
	r.replace(old, s)
	regex[0] = s
	verify("replace after reset")
	r.remove(regex...)
	regex = nil
	verify("remove all regex")
}

// A subscriber joining a cached topic gets the routes a rebuild gives:
// a target of its own when its connection (or select list) is new there,
// else a place in its connection's target.
func TestRouterAddMatchesRebuild(t *testing.T) {
	r := newRouter("json", 0)
	a, b := nopEndpoint(), nopEndpoint()
	r.routes("t")
	var added []*subscription
	// Past linearGroups targets, joins are checked against a set of them.
	eps := []*endpoint{a, b, a, nopEndpoint(), b}
	for range 2 * linearGroups {
		eps = append(eps, nopEndpoint())
	}
	eps = append(eps, a, eps[len(eps)-1], b)
	for i, ep := range eps {
		s := mustSub(t, "s"+strconv.Itoa(i), "t", ep)
		s.stamp = i == 3
		r.add(s)
		added = append(added, s)
	}
	rx := mustSub(t, "rx", "^t$", nopEndpoint())
	r.add(rx)
	got := r.routes("t")
	want := groupTargets(append(added, rx))
	if len(got.targets) != len(want) || got.regexOrder != &r.order {
		t.Fatalf("%d targets (regex order %v), want %d and the router's order lock", len(got.targets), got.regexOrder != nil, len(want))
	}
	for i := range want {
		g, w := got.targets[i], want[i]
		if g.ep != w.ep || g.sids.String() != w.sids.String() || g.flags != w.flags {
			t.Errorf("target %d: %p %q %v, want %p %q %v", i, g.ep, g.sids.String(), g.flags, w.ep, w.sids.String(), w.flags)
		}
	}
}
