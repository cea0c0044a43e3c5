package filter

import (
	"fmt"
	"strings"
	"testing"
)

// benchBody is a 1 KiB JSON message with the benchmark filter's fields
// spread through it: sym near the start, venue near the end.
var benchBody = func() []byte {
	var b strings.Builder
	b.WriteString(`{"sym":"ACME","pad0":"`)
	b.WriteString(strings.Repeat("x", 150))
	b.WriteString(`","qty":250,"meta":{"desk":"rates","book":"B1","trader":"jdoe"},"pad1":"`)
	b.WriteString(strings.Repeat("y", 200))
	b.WriteString(`","px":101.5,"lvl":[10,25,60,80,95],"pad2":"`)
	b.WriteString(strings.Repeat("z", 200))
	b.WriteString(`","side":"B","tags":["hot","fx","em"],"pad3":"`)
	for b.Len() < 1000 {
		b.WriteByte('w')
	}
	b.WriteString(`","venue":"XNYS"}`)
	return []byte(b.String())
}()

const benchFilter = `/sym = 'ACME' AND /qty > 100 AND /px BETWEEN 10 AND 200 AND /side IN ('B','S') AND /venue LIKE '^X'`

// richFilter uses text-building functions, arithmetic, IN and LIKE.
const richFilter = `UPPER(/sym) = 'ACME' AND CONCAT(/side, '-', /qty) = 'B-250' AND /qty * 2 + 1 > 400 AND /side IN ('B','S') AND /venue LIKE 'N.S$' AND SUBSTR(/meta/desk, 1, 4) = 'rate' AND INSTR(/meta/trader, 'do') = 2 AND ABS(0 - /px) > 100 AND COALESCE(/nosuch, /lvl) = 10`

func bindFor(tb testing.TB, src string) (*Matcher, *Extractor, *Fields) {
	f := mustCompile(tb, src)
	x, err := NewExtractor("json", f.Paths())
	if err != nil {
		tb.Fatal(err)
	}
	m, err := f.Bind(x)
	if err != nil {
		tb.Fatal(err)
	}
	return m, x, x.NewFields()
}

// TestMatchDoesNotAllocate measures allocations of Match (after warm-up)
// over filters with strings, arithmetic, IN, LIKE and text functions.
func TestMatchDoesNotAllocate(t *testing.T) {
	env := &Env{Topic: "orders", ClientName: "p"}
	for _, src := range []string{benchFilter, richFilter,
		`TOPIC_NAME() = 'orders' AND CLIENT_NAME() BEGINS WITH ('p') AND REVERSE(LOWER(/sym)) = 'emca'`,
		`/lvl IN (1,2,3,4,5,6,7,8,9,60) AND /tags IN ('a','b','c','d','e','f','g','h','fx') AND /px * /qty / 3 > 1`,
		`REPLACE(/sym, 'C', 'K') = 'AKME' AND CRC32(/sym) > 0 AND /sym NOT ENDS WITH ('X', CONCAT(/side, 'Z'))`,
	} {
		m, x, fs := bindFor(t, src)
		x.Extract(benchBody, fs)
		if !m.Match(fs, env) {
			t.Fatalf("%s does not match the benchmark body", src)
		}
		if n := testing.AllocsPerRun(200, func() { m.Match(fs, env) }); n != 0 && !raceEnabled {
			t.Errorf("%s: %.1f allocations per Match", src, n)
		}
	}
}

// orderFilter is a 5-predicate filter over the realistic order message of
// BenchmarkExtract (orderBody), its fields spread from the start to the
// last third of the message.
const orderFilter = `/instrument/symbol = 'ACME' AND /qty > 100 AND /price BETWEEN 10 AND 200 AND /side IN ('Buy', 'Sell') AND /strategy/name LIKE '^VW'`

// BenchmarkMatch: a filter alone over extracted fields ("match"), and a
// whole evaluation of one message ("extract+match"): 5pred and rich over
// benchBody (1 KiB with long text fields, the last field at the end), and
// order5pred over the ~1 KiB realistic order message.
func BenchmarkMatch(b *testing.B) {
	for _, c := range []struct {
		name, src string
		body      []byte
	}{{"5pred", benchFilter, benchBody}, {"rich", richFilter, benchBody}, {"order5pred", orderFilter, orderBody()}} {
		benchBody := c.body
		m, x, fs := bindFor(b, c.src)
		x.Extract(benchBody, fs)
		if !m.Match(fs, nil) {
			b.Fatal("no match")
		}
		b.Run(c.name+"/match", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m.Match(fs, nil)
			}
		})
		b.Run(c.name+"/extract+match", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(benchBody)))
			for b.Loop() {
				x.Extract(benchBody, fs)
				m.Match(fs, nil)
			}
		})
	}
}

// bench1000 builds 1000 different filters (each of 1 to 5 predicates over
// a few of the body's fields, with different constants) and one extractor
// over the union of their paths.
func bench1000(tb testing.TB, preds int) ([]*Matcher, *Extractor) {
	fields := []string{"/sym = 'A%d'", "/qty > %d", "/px BETWEEN %d AND 200", "/side IN ('B','S%d')", "/venue LIKE '^X%d'", "/meta/desk != 'r%d'", "/lvl = %d"}
	var fs []*Filter
	for i := range 1000 {
		var parts []string
		for j := range preds {
			parts = append(parts, fmt.Sprintf(fields[(i+j)%len(fields)], i))
		}
		fs = append(fs, mustCompile(tb, strings.Join(parts, " OR ")))
	}
	var union [][]string
	for _, f := range fs {
		union = append(union, f.Paths()...)
	}
	x, err := NewExtractor("json", union)
	if err != nil {
		tb.Fatal(err)
	}
	ms := make([]*Matcher, len(fs))
	for i, f := range fs {
		if ms[i], err = f.Bind(x); err != nil {
			tb.Fatal(err)
		}
	}
	return ms, x
}

// BenchmarkMatch1000Filters: one message, 1000 filters on one extractor:
// extract once, then 1000 Match calls. The filters are ORs that
// (mostly) fail, so every predicate is evaluated; the cost per op should
// grow with the predicates per filter, not with a parse per filter.
func BenchmarkMatch1000Filters(b *testing.B) {
	for _, preds := range []int{1, 2, 5} {
		ms, x := bench1000(b, preds)
		fs := x.NewFields()
		b.Run(fmt.Sprintf("preds=%d", preds), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				x.Extract(benchBody, fs)
				for _, m := range ms {
					m.Match(fs, nil)
				}
			}
		})
	}
}
