package relay

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/internal/loadgen"
)

// TestRelayScenarios runs the plain scenarios through an in-process relay
// with flow control engaged: everything delivered, nothing else.
func TestRelayScenarios(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- NewServer().Serve(l) }()
	defer func() {
		l.Close()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	d := &Driver{Addr: l.Addr().String()}
	for _, sc := range loadgen.Scenarios {
		r, err := loadgen.Run(loadgen.Config{Driver: d, Scenario: sc, Size: 1024, Count: 300, Window: 20,
			Drain: 20 * time.Second, Topic: loadgen.Topic(sc, 1024)})
		if sc.Needs != 0 {
			if !errors.Is(err, loadgen.ErrNotApplicable) {
				t.Errorf("%s: err %v, want ErrNotApplicable", sc.Name, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", sc.Name, err)
		}
		if r.Deliveries != r.Expected(sc) || r.Published != uint64(300*sc.Pubs) || r.Violations() != 0 {
			t.Errorf("%s: published %d, delivered %d of %d, violations %d, errors %q",
				sc.Name, r.Published, r.Deliveries, r.Expected(sc), r.Violations(), r.Errors)
		}
	}
}

func TestParseClientFrame(t *testing.T) {
	op, topic, body, err := parseClientFrame([]byte("P\x03abcbody"))
	if err != nil || op != opPublish || topic != "abc" || string(body) != "body" {
		t.Fatalf("got %q %q %q %v", op, topic, body, err)
	}
	for _, bad := range []string{"", "P", "P\x05abc", "X\x01a"} {
		if _, _, _, err := parseClientFrame([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
