package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// readyName is the readiness node under /amps/instance (ours): GET
// /amps/instance/x_ready answers 200 when the broker is ready for new
// clients (broker.Broker.Ready) and 503 with the reason when it is not,
// for a load balancer's or an orchestrator's readiness probe. The query
// parameter max_lag=N also fails it while the node has more than N
// ordered SOW updates of its cluster not yet applied
// (broker.BackplaneState.Lag); without it the lag does not count (see
// Ready for why). The bare path answers one line of text ("ready", or
// "not ready: <reason>"); ".json" the node {"ready", "reason"} wrapped in
// its ancestors, as every node is.
const readyName = "x_ready"

// maxLagParam is the query parameter of the readiness node's lag bound.
const maxLagParam = "max_lag"

// isReadyPath says whether segs name the readiness node.
func isReadyPath(segs []string) bool {
	return len(segs) == 3 && segs[1] == "instance" && segs[2] == readyName
}

// readiness is why the broker is not ready, "" when it is; with limited,
// a lag above maxLag is a reason too.
func (h *Handler) readiness(maxLag uint64, limited bool) string {
	if err := h.b.Ready(); err != nil {
		return err.Error()
	}
	if limited {
		if c := h.b.Stats().Cluster; c != nil && c.Lag > maxLag {
			return fmt.Sprintf("%d ordered SOW updates not applied yet, more than %s=%d", c.Lag, maxLagParam, maxLag)
		}
	}
	return ""
}

// readyNode is the x_ready node for a readiness reason.
func readyNode(reason string) node {
	n := node{"ready": btoa(reason == "")}
	if reason != "" {
		n["reason"] = reason
	}
	return n
}

// serveReady answers the readiness node: 200 or 503 (see readyName).
func (h *Handler) serveReady(w http.ResponseWriter, r *http.Request, req request) error {
	var maxLag uint64
	limited := r.URL.Query().Has(maxLagParam)
	if limited {
		v := r.URL.Query().Get(maxLagParam)
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return errorf(http.StatusBadRequest, "%s=%q: want a count of updates (0 or more)", maxLagParam, v)
		}
		maxLag = n
	}
	reason := h.readiness(maxLag, limited)
	status := http.StatusOK
	if reason != "" {
		status = http.StatusServiceUnavailable
	}
	if req.format == "json" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if r.Method == http.MethodHead {
			return nil
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(node{"amps": node{"instance": node{readyName: readyNode(reason)}}})
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return nil
	}
	line := "ready\n"
	if reason != "" {
		line = "not ready: " + reason + "\n"
	}
	_, err := w.Write([]byte(line))
	return err
}
