package broker_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/ampsbroker/ampsbroker/broker"
)

// maxRecordOverhead bounds what a SOW record costs beyond its message
// bytes: the record, its key, the map entry and the delivery header it
// shares its buffer with. The README gives the measured figure.
const maxRecordOverhead = 400

// TestSOWRecordOverhead measures the heap a SOW topic holds per record
// beyond the messages themselves, and checks Stats reports the records
// and message bytes held.
func TestSOWRecordOverhead(t *testing.T) {
	const n = 50000
	b := broker.New(&broker.Options{SOWTopics: []broker.SOWTopic{{Name: "orders", Keys: []string{"/id"}}}})
	defer b.Close()
	ctx := context.Background()
	c, err := b.Connect(ctx, "mem", nil)
	if err != nil {
		t.Fatal(err)
	}
	bodies := make([][]byte, n)
	var data int64
	for i := range bodies {
		bodies[i] = []byte(fmt.Sprintf(`{"id":%d,"sym":"ACME","px":101.25,"qty":%d,"side":"B","venue":"XNYS"}`, i, i%1000))
		data += int64(len(bodies[i]))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, body := range bodies {
		if err := c.Publish(ctx, "orders", body); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	st := b.Stats().SOWTopics
	if len(st) != 1 || st[0].Topic != "orders" || st[0].Records != n || st[0].Bytes != data {
		t.Fatalf("Stats.SOWTopics = %+v, want orders with %d records of %d bytes", st, n, data)
	}
	overhead := (int64(after.HeapAlloc) - int64(before.HeapAlloc) - data) / n
	t.Logf("%d records of %d bytes on average: %d bytes of overhead per record", n, data/n, overhead)
	if overhead > maxRecordOverhead {
		t.Errorf("a record costs %d bytes beyond its message, more than %d", overhead, maxRecordOverhead)
	}
	runtime.KeepAlive(bodies)
}
