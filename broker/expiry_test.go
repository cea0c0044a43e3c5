package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/protocol"
)

// The expiry heap holds one entry per key that can expire, however often
// the record is updated; a delete, or an update that never expires,
// removes it.
func TestExpiryHeapIsPerKey(t *testing.T) {
	b := New(&Options{SOWTopics: []SOWTopic{{Name: "t", Keys: []string{"/id"}, Expiration: time.Hour}}})
	defer b.Close()
	ctx := context.Background()
	c, _ := b.Connect(ctx, "c", nil)
	for i := 0; i < 1000; i++ {
		c.Publish(ctx, "t", []byte(fmt.Sprintf(`{"id":%d,"v":%d}`, i%3, i)))
	}
	if n := b.expiry.len(); n != 3 {
		t.Fatalf("after 1000 updates of 3 keys the heap holds %d entries, want 3", n)
	}
	forever := &protocol.Header{Command: protocol.CmdP}
	forever.Set(protocol.FieldExpiration, 0)
	if _, reason := b.publish(&c.endpoint, c.rt, "t", forever, []byte(`{"id":0}`)); reason != "" {
		t.Fatal(reason)
	}
	if n, err := c.SOWDelete(ctx, "t", "/id = 1"); err != nil || n != 1 {
		t.Fatalf("delete: %d, %v", n, err)
	}
	if n := b.expiry.len(); n != 1 {
		t.Fatalf("after a never-expiring update and a delete the heap holds %d entries, want 1", n)
	}
}
