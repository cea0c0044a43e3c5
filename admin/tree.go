package admin

import (
	"encoding/json"
	"fmt"
	"html"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
)

// The tree follows the AMPS JSON document output (spec §1.1): objects are
// map[string]any (encoding/json writes their keys sorted), collections are
// []node with an "id" each, and every value is a string.
type node = map[string]any

// Formats of the values (spec §1.1, §1.2, §4.1).
const (
	// rateDecimals is the number of decimals of ratios and rates, as in
	// AMPS's JSON example.
	rateDecimals = 12
	// timestampLayout is how AMPS writes sample times: 20111130T000010.000000Z.
	timestampLayout = "20060102T150405.000000Z"
)

func itoa[T ~int | ~int64 | ~uint64](v T) string { return strconv.FormatInt(int64(v), 10) }

func ftoa(v float64) string { return strconv.FormatFloat(v, 'f', rateDecimals, 64) }

func btoa(v bool) string { return strconv.FormatBool(v) }

// uptime formats d as AMPS does: hh:mm:ss.uuuuuu.
func uptime(d time.Duration) string {
	us := d.Microseconds()
	return fmt.Sprintf("%02d:%02d:%02d.%06d", us/3_600_000_000, us/60_000_000%60, us/1_000_000%60, us%1_000_000)
}

// tree builds the whole /amps node from the broker's live state and the
// last sample's rates. The history's samples (statistics/x_samples) are
// in it only when withSamples, for requests at or below that node: they
// would make every poll of /amps/instance.json many times larger.
func (h *Handler) tree(withSamples bool) node {
	b := h.b
	st := b.Stats()
	brates, last := h.hist.lastRates()

	clients := []node{}
	for _, c := range st.Conns {
		r := h.hist.connRates(c.ID)
		clients = append(clients, node{
			"id":                   itoa(c.ID),
			"client_name":          c.ClientName,
			"authenticated_id":     c.UserID,
			"remote_address":       c.RemoteAddr,
			"connection_name":      "amps-" + c.Transport + "-" + itoa(c.ID),
			"subscription_count":   itoa(c.Subscriptions),
			"queued_bytes_out":     itoa(c.QueuedBytes),
			"messages_in":          itoa(c.MessagesIn),
			"messages_out":         itoa(c.MessagesOut),
			"bytes_in":             itoa(c.BytesIn),
			"bytes_out":            itoa(c.BytesOut),
			"messages_in_per_sec":  ftoa(r.messagesIn),
			"messages_out_per_sec": ftoa(r.messagesOut),
			"bytes_in_per_sec":     ftoa(r.bytesIn),
			"bytes_out_per_sec":    ftoa(r.bytesOut),
			"x_transport":          c.Transport,
			"connect_time":         c.ConnectTime.UTC().Format(timestampLayout),
			"queue_max_latency":    ftoa(c.OldestQueued.Seconds()),
		})
	}

	subStates := b.Subscriptions()
	subs := []node{}
	for i, s := range subStates {
		sn := node{
			"id":            itoa(i + 1),
			"sub_id":        s.SubID,
			"topic":         s.Topic,
			"filter":        s.Filter,
			"message_type":  s.MessageType,
			"client_id":     itoa(s.ConnID),
			"x_client_name": s.ClientName,
			"x_in_process":  btoa(s.InProcess),
			"x_regex":       btoa(s.Regex),
		}
		subs = append(subs, sn)
	}

	sow := []node{}
	for _, t := range st.SOWTopics {
		sow = append(sow, node{
			"id":           t.Topic + "!" + t.MessageType,
			"topic":        t.Topic,
			"message_type": t.MessageType,
			"valid_keys":   itoa(t.Records),
			"stored_bytes": itoa(t.Bytes),
		})
	}

	transports := []node{}
	for _, t := range b.Transports() {
		transports = append(transports, node{
			"id":            t.Name,
			"name":          t.Name,
			"is_enabled":    btoa(t.Enabled),
			"x_inet_addr":   strings.Join(t.Addrs, ","),
			"x_connections": itoa(t.Connections),
		})
	}

	statistics := node{"file_name": ":memory:", "interval": itoa(h.opts.Interval.Milliseconds()), "total_samples": itoa(len(h.hist.samples()))}
	if withSamples {
		statistics["x_samples"] = h.samplesNode()
	}
	instance := node{
		"name":          b.Name(),
		"version":       b.Version(),
		"description":   h.opts.Description,
		"environment":   h.opts.Environment,
		"pid":           itoa(os.Getpid()),
		"uptime":        uptime(time.Since(h.start)),
		"clients":       clients,
		"subscriptions": subs,
		"sow":           sow,
		"transports":    transports,
		"processors": []node{{
			"id":                              "all",
			"messages_received":               itoa(st.MessagesIn),
			"messages_received_per_sec":       ftoa(brates.messagesIn),
			"messages_received_bytes":         itoa(st.BytesIn),
			"messages_received_bytes_per_sec": ftoa(brates.bytesIn),
			"matches_found":                   itoa(st.MessagesOut),
			"matches_found_per_sec":           ftoa(brates.messagesOut),
			"matches_found_bytes":             itoa(st.BytesOut),
			"matches_found_bytes_per_sec":     ftoa(brates.bytesOut),
			"denied_reads":                    itoa(st.NotEntitled),
			"throttle_count":                  "0",
		}},
		"x_broker": node{
			"connections":             itoa(st.Connections),
			"in_process_clients":      itoa(st.Clients),
			"messages_in":             itoa(st.MessagesIn),
			"messages_out":            itoa(st.MessagesOut),
			"bytes_in":                itoa(st.BytesIn),
			"bytes_out":               itoa(st.BytesOut),
			"messages_in_per_sec":     ftoa(brates.messagesIn),
			"messages_out_per_sec":    ftoa(brates.messagesOut),
			"bytes_in_per_sec":        ftoa(brates.bytesIn),
			"bytes_out_per_sec":       ftoa(brates.bytesOut),
			"subscriptions":           itoa(st.Subscriptions),
			"slow_client_disconnects": itoa(st.SlowConsumers),
			"auth_failures":           itoa(st.AuthFailures),
			"connections_rejected":    itoa(st.Rejected),
			"deliveries_dropped":      itoa(st.Dropped),
			"not_entitled":            itoa(st.NotEntitled),
		},
		"memory":          processMemory(),
		"statistics":      statistics,
		"x_topics":        topicsNode(st, subStates, h.hist.topicTraffic()),
		"queues":          []node{},
		"views":           []node{},
		"queries":         node{"queued_queries": "0"},
		"api":             node{"command_queue_depth": "0"},
		"transaction_log": journalNode(st),
		"replication":     []node{},
		"x_cluster":       clusterNode(st),
		readyName:         readyNode(h.readiness(0, false)),
	}
	if wd, err := os.Getwd(); err == nil {
		instance["cwd"] = wd
	}
	if !last.IsZero() {
		instance["timestamp"] = last.UTC().Format(timestampLayout)
	}
	hostName, _ := os.Hostname()
	return node{
		"host":          node{"name": hostName, "cpus": []node{}, "memory": node{}, "network": []node{}},
		"instance":      instance,
		"administrator": administratorListing(st, b.Transports()),
	}
}

// processMemory reads the process's resident and virtual size from
// /proc/self/statm (Linux); elsewhere it is empty.
func processMemory() node {
	m := node{}
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return m
	}
	f := strings.Fields(string(data))
	if len(f) < 2 {
		return m
	}
	page := int64(os.Getpagesize())
	vm, err1 := strconv.ParseInt(f[0], 10, 64)
	rss, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 == nil && err2 == nil {
		m["vmsize"], m["rss"] = itoa(vm*page), itoa(rss*page)
	}
	return m
}

// find walks from the /amps node down segs (after "amps") and returns the
// node reached, wrapped in its ancestors: the wrapping of a collection
// item is a one-element array (spec §1.1). ok is false for no such node.
func find(root any, segs []string) (found any, wrap func(any) any, ok bool) {
	wrap = func(v any) any { return v }
	cur := root
	for _, seg := range segs {
		outer := wrap
		switch n := cur.(type) {
		case node:
			child, has := n[seg]
			if !has {
				return nil, nil, false
			}
			wrap = func(v any) any { return outer(node{seg: v}) }
			cur = child
		case []node:
			i := slices.IndexFunc(n, func(item node) bool { return item["id"] == seg })
			if i < 0 {
				return nil, nil, false
			}
			id := n[i]["id"]
			wrap = func(v any) any {
				// Below an item, the wrapper keeps the item's id.
				if m, ok := v.(node); ok && m["id"] == nil {
					v = node{"id": id}
					maps.Copy(v.(node), m)
				}
				return outer([]any{v})
			}
			cur = n[i]
		default:
			return nil, nil, false // below a leaf
		}
	}
	return cur, wrap, true
}

// serveTree answers a statistics request: JSON or the HTML listing.
func (h *Handler) serveTree(w http.ResponseWriter, r *http.Request, req request) error {
	withSamples := len(req.segs) >= 3 && req.segs[1] == "instance" && req.segs[2] == "statistics" &&
		(len(req.segs) == 3 || req.segs[3] == "x_samples")
	found, wrap, ok := find(h.tree(withSamples), req.segs[1:])
	if !ok {
		return errorf(http.StatusNotFound, "no admin node at /%s", strings.Join(req.segs, "/"))
	}
	if req.format == "json" {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodHead {
			return nil
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(node{"amps": wrap(found)})
	}
	base := req.segs[len(req.segs)-1]
	if strings.HasSuffix(r.URL.Path, "/") {
		base = "." // the page is a "directory": links go below it
	}
	var children []string
	leaf := ""
	switch n := found.(type) {
	case node:
		for k := range n {
			children = append(children, k)
		}
		slices.Sort(children)
	case []node:
		for _, item := range n {
			children = append(children, item["id"].(string))
		}
	case string:
		leaf = n
	}
	return writeHTML(w, r, "/"+strings.Join(req.segs, "/"), prefixed(base, children), leaf)
}

// prefixed makes the relative links of a listing: the page of
// /amps/instance is served at ".../instance", so its children are
// "instance/<child>" (spec §4.4: relative URLs only, for proxies that
// strip a prefix).
func prefixed(base string, children []string) []string {
	out := make([]string, len(children))
	for i, c := range children {
		out[i] = base + "/" + url.PathEscape(c)
	}
	return out
}

// writeHTML writes the minimal listing of a node: its path, its value if
// it is a leaf, and links to its children and to its JSON.
func writeHTML(w http.ResponseWriter, r *http.Request, path string, links []string, leaf string) error {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if r.Method == http.MethodHead {
		return nil
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "<!doctype html>\n<title>%s</title>\n<h1>%s</h1>\n", html.EscapeString(path), html.EscapeString(path))
	if leaf != "" || len(links) == 0 && path != "/" {
		fmt.Fprintf(&sb, "<pre>%s</pre>\n", html.EscapeString(leaf))
	}
	sb.WriteString("<ul>\n")
	for _, l := range links {
		label, _ := url.PathUnescape(l[strings.LastIndexByte(l, '/')+1:])
		fmt.Fprintf(&sb, "<li><a href=\"%s\">%s</a></li>\n", html.EscapeString(l), html.EscapeString(label))
	}
	sb.WriteString("</ul>\n")
	if path != "/" {
		name := url.PathEscape(path[strings.LastIndexByte(path, '/')+1:])
		fmt.Fprintf(&sb, "<p><a href=\"%s.json\">JSON</a></p>\n", html.EscapeString(name))
	}
	_, err := w.Write([]byte(sb.String()))
	return err
}

// clusterNode is the x_cluster entry (ours; AMPS's replication is another
// design): empty without a backplane; else the node's link to its
// cluster, the publishes that crossed it, and its place in the cluster's
// SOW order (ordered, catching up, lag: updates not applied yet).
func clusterNode(st broker.Stats) node {
	c := st.Cluster
	if c == nil {
		return node{}
	}
	n := node{
		"x_connected":        strconv.FormatBool(c.Connected),
		"x_published":        itoa(c.Published),
		"x_publish_failures": itoa(c.PublishFailures),
		"x_received":         itoa(c.Received),
		"x_received_dropped": itoa(c.ReceivedDropped),
		"x_lost":             itoa(c.Lost),
		"x_sow_ordered":      btoa(c.SOWOrdered),
		"x_catching_up":      btoa(c.CatchingUp),
		"x_lag":              itoa(c.Lag),
	}
	if c.StartErr != nil {
		n["x_start_error"] = c.StartErr.Error()
	}
	return n
}

// journalNode is the transaction_log entry: empty without a journal;
// else the journal's figures under x_ names of ours (AMPS's own fields
// are per journal file and its write latencies, which we do not keep).
func journalNode(st broker.Stats) node {
	j := st.Journal
	if j == nil {
		return node{}
	}
	return node{
		"x_bytes":                   itoa(j.Bytes),
		"x_files":                   itoa(j.Segments),
		"x_entries":                 itoa(j.Entries),
		"x_first_position":          itoa(j.First),
		"x_next_position":           itoa(j.Next),
		"x_durable_position":        itoa(j.Durable),
		"x_not_durable":             itoa(j.Next - j.Durable),
		"x_cursors":                 itoa(j.Cursors),
		"x_syncs":                   itoa(j.Syncs),
		"x_replaying_subscriptions": itoa(st.ReplayingSubscriptions),
	}
}
