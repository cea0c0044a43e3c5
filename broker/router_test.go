package broker

import (
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
