package admin

import (
	"cmp"
	"embed"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/ampsbroker/ampsbroker/broker"
)

// The dashboard (spec §4.4) is a page at the handler's root and a few
// assets under dashboardDir, all embedded: no CDN, no build step. The page
// uses relative URLs only ("dashboard/app.js", "amps/instance.json"), so
// that it works wherever the handler is mounted, a proxy's stripped prefix
// ("/admin/") included. Its script polls the JSON tree once per Interval,
// and shows the disconnect and transport buttons only when the amps-admin
// check says the user may run those actions.

//go:embed dashboard
var dashboardFS embed.FS

const (
	// dashboardDir is the URL directory (and embedded directory) of the
	// dashboard's assets.
	dashboardDir = "dashboard"
	// dashboardPage is the embedded file served at the root.
	dashboardPage = "dashboard/index.html"
	// dashboardCSP confines the page to its own assets and to fetching
	// the admin tree from its own origin: no inline script or style, no
	// frames, no forms.
	dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	// topTopicsLimit is how many topics x_topics lists.
	topTopicsLimit = 20
	// serverTopicPrefix starts the topics the broker itself publishes
	// (/AMPS/ClientStatus, ...), which x_topics leaves out.
	serverTopicPrefix = "/AMPS/"
)

// assetTypes are the Content-Types of the embedded files by extension.
var assetTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

// isDashboardPath says whether p (after the prefix) is the page or one of
// its assets.
func isDashboardPath(p string) bool {
	return p == "/" || strings.HasPrefix(p, "/"+dashboardDir+"/")
}

// serveDashboard answers the page ("/") and its assets. They hold no
// statistics, so they need the request to be authenticated (when the host
// authenticates) but no entitlement: what a user may see is decided when
// the page's script fetches the tree.
func (h *Handler) serveDashboard(w http.ResponseWriter, r *http.Request, p string) error {
	if r.Method == http.MethodPost {
		return errorf(http.StatusMethodNotAllowed, "method POST is only for actions under /amps/administrator")
	}
	if h.opts.NoDashboard {
		return errorf(http.StatusNotFound, "the dashboard is turned off (admin.Options.NoDashboard)")
	}
	if !h.anonymous(p) {
		if _, err := h.authenticate(r); err != nil {
			return err
		}
	}
	name := dashboardPage
	if p != "/" {
		name = strings.TrimPrefix(p, "/")
	}
	typ, known := assetTypes[path.Ext(name)]
	data, err := fs.ReadFile(dashboardFS, name)
	if err != nil || !known || path.Clean(name) != name || name == dashboardPage && p != "/" {
		return errorf(http.StatusNotFound, "no dashboard file at %q", p)
	}
	w.Header().Set("Content-Type", typ)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if name == dashboardPage {
		w.Header().Set("Content-Security-Policy", dashboardCSP)
	}
	if r.Method == http.MethodHead {
		return nil
	}
	_, err = w.Write(data)
	return err
}

// samplesNode is /amps/instance/statistics/x_samples: the broker-wide
// rates between consecutive samples of the history, oldest first, each
// with the time of its later sample as id. The dashboard draws its chart
// from it.
func (h *Handler) samplesNode() []node {
	ss := h.hist.samples()
	out := []node{}
	for i := 1; i < len(ss); i++ {
		prev, cur := ss[i-1], ss[i]
		secs := cur.Time.Sub(prev.Time).Seconds()
		if secs <= 0 {
			continue
		}
		out = append(out, node{
			"id":                   cur.Time.UTC().Format(timestampLayout),
			"connections":          itoa(cur.Connections),
			"subscriptions":        itoa(cur.Subscriptions),
			"messages_in_per_sec":  ftoa(float64(cur.MessagesIn-prev.MessagesIn) / secs),
			"messages_out_per_sec": ftoa(float64(cur.MessagesOut-prev.MessagesOut) / secs),
			"bytes_in_per_sec":     ftoa(float64(cur.BytesIn-prev.BytesIn) / secs),
			"bytes_out_per_sec":    ftoa(float64(cur.BytesOut-prev.BytesOut) / secs),
		})
	}
	return out
}

// topicFigures are what x_topics says of one topic.
type topicFigures struct {
	topic, messageType string
	traffic            topicTraffic
	subscriptions      int
	regex              bool
	sowRecords         int
	sowBytes           int64
	sow                bool
}

// topicsNode is /amps/instance/x_topics: at most topTopicsLimit topics,
// the busiest first (messages per second over the last interval, then
// messages routed as of the last sample, from Broker.BusiestTopics), then
// those with the most subscriptions and SOW records; each is identified
// as "<topic>!<type>" like a SOW entry. A regular expression subscription
// counts under its pattern (x_regex "true"). The server's own topics
// (serverTopicPrefix) are left out: they are not what clients publish.
func topicsNode(st broker.Stats, subs []broker.SubscriptionState, traffic map[string]topicTraffic) []node {
	byID := map[string]*topicFigures{}
	get := func(topic, mt string) *topicFigures {
		id := topic + "!" + mt
		f := byID[id]
		if f == nil {
			f = &topicFigures{topic: topic, messageType: mt}
			byID[id] = f
		}
		return f
	}
	for id, tr := range traffic {
		// A topic may hold '!', a message type does not.
		i := strings.LastIndexByte(id, '!')
		get(id[:i], id[i+1:]).traffic = tr
	}
	for _, s := range subs {
		f := get(s.Topic, s.MessageType)
		f.subscriptions++
		f.regex = s.Regex
	}
	for _, t := range st.SOWTopics {
		f := get(t.Topic, t.MessageType)
		f.sow, f.sowRecords, f.sowBytes = true, t.Records, t.Bytes
	}
	all := make([]*topicFigures, 0, len(byID))
	for _, f := range byID {
		if !strings.HasPrefix(f.topic, serverTopicPrefix) {
			all = append(all, f)
		}
	}
	slices.SortFunc(all, func(a, b *topicFigures) int {
		return cmp.Or(cmp.Compare(b.traffic.perSec, a.traffic.perSec), cmp.Compare(b.traffic.messages, a.traffic.messages),
			cmp.Compare(b.subscriptions, a.subscriptions), cmp.Compare(b.sowRecords, a.sowRecords),
			cmp.Compare(a.topic, b.topic), cmp.Compare(a.messageType, b.messageType))
	})
	out := []node{}
	for _, f := range all[:min(len(all), topTopicsLimit)] {
		n := node{
			"id":               f.topic + "!" + f.messageType,
			"topic":            f.topic,
			"message_type":     f.messageType,
			"subscriptions":    itoa(f.subscriptions),
			"messages":         itoa(f.traffic.messages),
			"messages_per_sec": ftoa(f.traffic.perSec),
			"x_regex":          btoa(f.regex),
			"sow":              btoa(f.sow),
		}
		if f.sow {
			n["valid_keys"], n["stored_bytes"] = itoa(f.sowRecords), itoa(f.sowBytes)
		}
		out = append(out, n)
	}
	return out
}
