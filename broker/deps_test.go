package broker_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBrokerDependsOnNoTransport keeps the dependencies pointing one way:
// the broker drives transports through package transport's interfaces and
// never imports their implementations.
func TestBrokerDependsOnNoTransport(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps listed only %v", deps)
	}
	for _, dep := range deps {
		for _, banned := range []string{
			"github.com/ampsbroker/ampsbroker/listener",
			"github.com/ampsbroker/ampsbroker/preflight",
			// Journals plug in through broker.Journal.
			"github.com/ampsbroker/ampsbroker/journal",
			"github.com/coder/websocket",
		} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("broker depends on %s", dep)
			}
		}
	}
}
