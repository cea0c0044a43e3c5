package filter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// orderJSON is a realistic ~1 KiB JSON order message: nested objects,
// arrays of scalars and of objects, strings with escapes (quotes,
// backslashes before a closing quote, \n, \t, \uXXXX and a surrogate pair),
// integers, floats with fractions and exponents, null and booleans. The
// line breaks are between members only and are removed by orderBody.
const orderJSON = `{"orderId":"ORD-20240611-000123456","clOrdId":"c-7f3a9b21e4","version":3,"status":"PartiallyFilled",
"account":{"id":"ACC\/EU\/0042","name":"Alpha \"Core\" Fund","region":"EMEA","tags":["hedge","tier-1","eu"]},
"instrument":{"symbol":"ACME","isin":"US0000000001","venue":"XNAS","currency":"USD","tick":0.01},
"side":"Buy","ordType":"Limit","tif":"Day","price":101.25,"qty":2500,"filledQty":1200,"avgPx":101.2375,
"fills":[{"id":"F1","px":101.2,"qty":500,"venue":"XNAS","ts":"2024-06-11T14:03:22.123Z"},{"id":"F2","px":101.25,"qty":700,"venue":"BATS","ts":"2024-06-11T14:03:25.456Z"}],
"notes":"client said: \"fill at 101.25 or better\"\nrouting:\tsmart \\ path C:\\orders\\",
"limits":{"maxQty":10000,"maxNotional":1.5e6,"minPx":-0.5,"checks":[true,false,true]},
"created":"2024-06-11T14:03:21.001Z","updated":"2024-06-11T14:03:25.456Z","trader":"jdoe",
"strategy":{"name":"VWAP","params":{"start":"14:00","end":"16:00","pov":0.15,"urgency":"medium","venues":["XNAS","BATS","ARCA"]}},
"text":"Unicode: caf\u00e9 \u20ac5 \ud83d\ude00 ok","flags":[1,2,3,5,8,13],"parent":null,"live":true,"seq":987654}`

// orderBody returns orderJSON as one line, as a publisher sends it.
func orderBody() []byte { return []byte(strings.ReplaceAll(orderJSON, "\n", "")) }

// orderLeafPaths returns every path of orderJSON that holds a value
// (members of objects inside arrays once each), sorted.
func orderLeafPaths(tb testing.TB) [][]string {
	var doc map[string]any
	if err := json.Unmarshal(orderBody(), &doc); err != nil {
		tb.Fatal(err)
	}
	seen := map[string]bool{}
	var out [][]string
	var walk func(prefix []string, v any)
	walk = func(prefix []string, v any) {
		if m, ok := v.(map[string]any); ok {
			for k, e := range m {
				walk(append(slices.Clip(prefix), k), e)
			}
			return
		}
		if a, ok := v.([]any); ok && len(a) > 0 {
			if _, objects := a[0].(map[string]any); objects {
				for _, e := range a {
					walk(prefix, e)
				}
				return
			}
		}
		if key := strings.Join(prefix, "/"); !seen[key] {
			seen[key] = true
			out = append(out, prefix)
		}
	}
	walk(nil, doc)
	slices.SortFunc(out, func(a, b []string) int { return strings.Compare(strings.Join(a, "/"), strings.Join(b, "/")) })
	return out
}

// kvOrder builds a ~1 KiB FIX (names false) or NVFIX (names true) order
// with SOH separators: the header, the order's fields, and padding fields
// (free text and custom tags) between them, ending with the checksum.
func kvOrder(names bool) []byte {
	for n := 12; ; n++ {
		if b := kvOrderN(names, n); len(b) >= 1000 {
			return b
		}
	}
}

// kvOrderN builds the order of kvOrder with n custom fields.
func kvOrderN(names bool, n int) []byte {
	type kv struct{ tag, name, val string }
	fields := []kv{
		{"8", "BeginString", "FIX.4.4"}, {"9", "BodyLength", "1002"}, {"35", "MsgType", "D"},
		{"49", "SenderCompID", "ALPHA-CORE-FUND"}, {"56", "TargetCompID", "BROKER-XYZ"},
		{"34", "MsgSeqNum", "123456"}, {"52", "SendingTime", "20240611-14:03:21.001"},
		{"11", "ClOrdID", "c-7f3a9b21e4"}, {"1", "Account", "ACC/EU/0042"},
		{"55", "Symbol", "ACME"}, {"48", "SecurityID", "US0000000001"}, {"22", "IDSource", "4"},
		{"207", "SecurityExchange", "XNAS"}, {"15", "Currency", "USD"},
	}
	for i := 0; i < n; i++ {
		fields = append(fields, kv{fmt.Sprint(5000 + i), fmt.Sprintf("Custom%02d", i), fmt.Sprintf("custom value number %d", i)})
		if i == 4 {
			fields = append(fields, kv{"54", "Side", "1"}, kv{"40", "OrdType", "2"}, kv{"59", "TimeInForce", "0"})
		}
		if i == n*3/4 {
			fields = append(fields, kv{"38", "OrderQty", "2500"}, kv{"58", "Text", "client said: fill at 101.25 or better, routing smart"})
		}
	}
	fields = append(fields, kv{"60", "TransactTime", "20240611-14:03:21.000"}, kv{"44", "Price", "101.25"}, kv{"10", "CheckSum", "123"})
	var b bytes.Buffer
	for _, f := range fields {
		if names {
			b.WriteString(f.name)
		} else {
			b.WriteString(f.tag)
		}
		b.WriteByte('=')
		b.WriteString(f.val)
		b.WriteByte(kvFieldSep)
	}
	return b.Bytes()
}

// benchExtract measures Extract of paths (given as "/a/b") from body.
func benchExtract(b *testing.B, mt string, body []byte, paths [][]string) {
	x, err := NewExtractor(mt, paths)
	if err != nil {
		b.Fatal(err)
	}
	f := x.NewFields()
	x.Extract(body, f)
	if f.Malformed() {
		b.Fatalf("%s body reported malformed", mt)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		x.Extract(body, f)
	}
}

// mustFind fails unless every path yields at least one value from body, so
// a benchmark measures what it says.
func mustFind(b *testing.B, mt string, body []byte, paths [][]string) {
	x, _ := NewExtractor(mt, paths)
	f := x.NewFields()
	x.Extract(body, f)
	for i, p := range paths {
		if s, _ := x.Slot(p); len(f.Field(s).Values) == 0 {
			b.Fatalf("path %d (/%s) yields nothing", i, strings.Join(p, "/"))
		}
	}
}

func sp(paths ...string) [][]string {
	var out [][]string
	for _, p := range paths {
		out = append(out, split(p))
	}
	return out
}

// BenchmarkExtract: field extraction from ~1 KiB messages of each format.
func BenchmarkExtract(b *testing.B) {
	order := orderBody()
	cases := []struct {
		name  string
		mt    string
		body  []byte
		paths [][]string
	}{
		// The five paths all lie in the first fifth of the message: the
		// scan stops early.
		{"JSON/5fields_early", "json", order, sp("/orderId", "/status", "/account/region", "/instrument/symbol", "/side")},
		// Spread through the message, the last at about 70%.
		{"JSON/5fields_spread", "json", order, sp("/status", "/instrument/symbol", "/qty", "/limits/maxQty", "/trader")},
		// Spread, one through an array of objects, the last one the final
		// member: the whole message is read.
		{"JSON/5fields_last_at_end", "json", order, sp("/instrument/symbol", "/price", "/fills/px", "/strategy/params/pov", "/seq")},
		{"JSON/1field_middle", "json", order, sp("/price")},
		{"JSON/1field_at_end", "json", order, sp("/seq")},
		{"FIX/5tags", "fix", kvOrder(false), sp("/35", "/55", "/54", "/38", "/44")},
		{"NVFIX/5names", "nvfix", kvOrder(true), sp("/MsgType", "/Symbol", "/Side", "/OrderQty", "/Price")},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			mustFind(b, c.mt, c.body, c.paths)
			benchExtract(b, c.mt, c.body, c.paths)
		})
	}
	// Every path that holds a value, padded to 50 with absent ones.
	b.Run("JSON/50paths", func(b *testing.B) {
		paths := orderLeafPaths(b)
		for i := 0; len(paths) < 50; i++ {
			paths = append(paths, []string{fmt.Sprintf("absent%02d", i)})
		}
		paths = paths[:50]
		benchExtract(b, "json", order, paths)
	})
}
