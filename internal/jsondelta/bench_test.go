package jsondelta

import "testing"

// benchOrder is a ~1 KiB order record, benchDelta a 3-field delta of it
// (a status, a price inside a nested object, a new field).
var (
	benchOrder = []byte(`{"id":"ORD-2024-000123456","clOrdId":"C-88231-XK","account":"ACCT-7781","trader":"jsmith","desk":"EQ-CASH-LDN","symbol":"VOD.L","isin":"GB00BH4HKS39","side":"BUY","ordType":"LIMIT","tif":"DAY","status":"NEW","qty":125000,"filled":0,"leaves":125000,"avgPx":0,"limitPx":{"value":72.35,"ccy":"GBP","scale":2},"stopPx":null,"venue":"XLON","route":"SOR-1","algo":{"name":"VWAP","start":"08:00:00","end":"16:30:00","pov":0.12,"urgency":"MEDIUM"},"created":"2024-03-18T08:01:02.345Z","updated":"2024-03-18T08:01:02.345Z","tags":["client","index","rebal"],"notes":"Rebalance trade for index fund; do not cross with internal flow before 10:00.","commission":{"rate":0.0005,"type":"BPS","min":5},"settle":{"date":"2024-03-20","ccy":"GBP","agent":"CREST"},"parentId":"PAR-5521","strategy":"INDEX_REBAL","region":"EMEA","book":"B-1120","legalEntity":"LE-UK-01","shortSell":false,"locateId":null,"version":1,"seq":88213,"source":"OMS-PRIMARY","flags":{"dma":false,"care":true,"iceberg":false},"displayQty":0}`)
	benchDelta = []byte(`{"status":"PARTIAL","limitPx":{"value":72.40},"lastFillId":"F-1"}`)
)

func BenchmarkMerge(b *testing.B) {
	b.SetBytes(int64(len(benchOrder)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Merge(benchOrder, benchDelta); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDiff(b *testing.B) {
	updated, err := Merge(benchOrder, benchDelta)
	if err != nil {
		b.Fatal(err)
	}
	keys := [][]string{{"id"}}
	b.SetBytes(int64(len(benchOrder)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Diff(benchOrder, updated, keys); err != nil {
			b.Fatal(err)
		}
	}
}

// TestBenchInputs keeps the benchmark honest: the inputs are what their
// comment says and the results are the expected ones.
func TestBenchInputs(t *testing.T) {
	if n := len(benchOrder); n < 900 || n > 1200 {
		t.Errorf("benchOrder is %d bytes, want about 1 KiB", n)
	}
	updated, err := Merge(benchOrder, benchDelta)
	if err != nil {
		t.Fatal(err)
	}
	delta, empty, err := Diff(benchOrder, updated, [][]string{{"id"}})
	want := `{"id":"ORD-2024-000123456","status":"PARTIAL","limitPx":{"value":72.40},"lastFillId":"F-1"}`
	if err != nil || empty || string(delta) != want {
		t.Errorf("Diff = %s, %v, %v; want %s", delta, empty, err, want)
	}
}
