package broker

import (
	"encoding/json"
	"net/http"
)

// StatsHandler returns an http.Handler that serves Stats as JSON, for a
// host to mount on its own admin server, e.g.
//
//	mux.Handle("/amps/stats", b.StatsHandler())
//
// It answers GET and HEAD; the snapshot is taken per request.
func (b *Broker) StatsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if r.Method == http.MethodHead {
			return
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(b.Stats())
	})
}
