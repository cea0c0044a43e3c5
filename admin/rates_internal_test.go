package admin

import (
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/ampstest"
)

// TestRates samples by hand at known times: the "_per_sec" fields are the
// counts of the last finished interval divided by its length.
func TestRates(t *testing.T) {
	b := ampstest.NewBroker(t, nil)
	h := NewHandler(b.Broker, &Options{Interval: time.Hour}) // no automatic sample during the test
	defer h.Close()
	c := b.Dial(b.TCPURL(), nil)
	c.Logon("pub")
	c.Flush("f")
	t0 := time.Now()
	h.hist.sample(b.Broker, t0)
	for range 10 {
		c.Publish("t", []byte(`{}`))
	}
	c.Flush("f")
	h.hist.sample(b.Broker, t0.Add(2*time.Second))
	for range 4 {
		c.Publish("t", []byte(`{}`)) // after the last sample: not in the rates
	}
	c.Flush("g")

	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/amps/instance.json", nil))
	var v struct {
		Amps struct {
			Instance struct {
				Clients    []map[string]string
				Processors []map[string]string
				XBroker    map[string]string `json:"x_broker"`
			}
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("%v in %s", err, w.Body)
	}
	in := v.Amps.Instance
	if len(in.Clients) != 1 || len(in.Processors) != 1 {
		t.Fatalf("instance = %s", w.Body)
	}
	want := "5." + "000000000000"
	for name, got := range map[string]string{
		"client messages_in_per_sec":               in.Clients[0]["messages_in_per_sec"],
		"processors/all messages_received_per_sec": in.Processors[0]["messages_received_per_sec"],
		"x_broker messages_in_per_sec":             in.XBroker["messages_in_per_sec"],
	} {
		if got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if got := in.Clients[0]["messages_in"]; got != strconv.Itoa(14) {
		t.Errorf("messages_in = %q, want the live 14", got)
	}
}
