// Package admin serves a broker's statistics and administrative actions
// over HTTP in the shape of the AMPS admin interface (spec amps-admin.md):
// the JSON tree under /amps (/amps.json, /amps/instance.json, ...) that
// scripts written for AMPS poll, and the actions under
// /amps/administrator. A host mounts the Handler on its own HTTP server,
// as it does listener.NewWebSocketHandler.
//
// At the root ("/") a dashboard page (dashboard.go) shows the same
// figures to a person: connections, a chart of the message rates over the
// last minutes, top topics, slow clients, SOW sizes, journal and cluster.
//
// Served: JSON (".json" on any node: the node wrapped in its ancestors
// from "amps", collections as arrays of objects with "id", every value a
// string), and for the bare path (no suffix) a minimal HTML listing with
// relative links, so that the pages work behind a proxy's prefix. The
// leaves of x_broker and processors/all keep a history (series.go): with
// t0/t1 or ".csv" they answer "timestamp,value" lines. Refused with 501:
// ".xml", ".csv" and t0/t1 on other nodes, and a history in JSON. Unknown paths
// (and /amps.rnc) get 404. A SOW entry's id is "<topic>!<type>"; a slash
// in it is escaped in the path ("sow/orders%2Feu!json.json").
//
// Readiness (ours, ready.go): /amps/instance/x_ready answers 200 or 503
// with the reason, for a readiness probe (see readyName).
//
// Who may do what (spec §3, §4.3): statistics are open and actions are
// refused (403) unless the host decides otherwise, by giving an Entitler
// (asked for every path, as AMPS asks its admin entitlements) or by
// setting OpenActions. Actions run on GET, as AMPS's scripts expect, and
// on POST; never on HEAD, and never from another site's page.
package admin

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
)

// Defaults of Options.
const (
	// DefaultInterval is how often the statistics are sampled (AMPS
	// Admin/Interval default, spec §1.2).
	DefaultInterval = 10 * time.Second
	// DefaultHistorySize is how many samples the history keeps: an hour
	// at DefaultInterval (spec §4.1).
	DefaultHistorySize = 360
	// basicRealm is the realm of the WWW-Authenticate challenge.
	basicRealm = "AMPS Admin"
)

// Options configures a Handler. The zero value (or nil) means: sample every
// DefaultInterval, keep DefaultHistorySize samples, log nothing, serve the
// statistics to anyone who reaches the handler and refuse every action
// (403) until the host decides who may run them (Entitler or OpenActions).
type Options struct {
	// Interval is the sampling period of the statistics history and of the
	// "_per_sec" rates. Default DefaultInterval; must not be negative.
	// Any positive value is taken (tests sample every few milliseconds);
	// AMPS's minimum of 1s is for the configuration file to enforce.
	Interval time.Duration
	// HistorySize bounds the samples kept. Default DefaultHistorySize.
	HistorySize int
	// Logger receives the actions run and refused. Default: discard.
	Logger *slog.Logger

	// PathPrefix is removed from each request's path before it is
	// served, for a proxy that forwards "/admin/amps.json" unchanged
	// (nginx "location /admin/ { proxy_pass http://admin; }"). A request
	// outside the prefix gets 404. Default "": the handler sees the tree
	// at its root (mount it with http.StripPrefix otherwise).
	PathPrefix string

	// Description and Environment are the instance's "description" and
	// "environment" fields (AMPS config Description, Environment).
	Description, Environment string

	// Authenticate says who sends a request, e.g. from its Basic
	// credentials; an error answers 401 with a Basic challenge. Default:
	// every request is the anonymous user "".
	Authenticate func(r *http.Request) (userID string, err error)
	// Entitler decides what each user may see and do, AMPS's way (spec
	// §3): it is asked with the request's path without suffix or query
	// ("/amps/instance/clients", "/amps/administrator/clients/7/disconnect")
	// as the topic and broker.Read, for statistics and actions alike
	// (broker.Write for actions when ActionsNeedWrite). It is separate from
	// the broker's topic Entitler, whose rules would grant admin paths by
	// accident ("" prefixes). Setting it turns actions on. Default nil:
	// statistics open, actions as OpenActions says.
	Entitler broker.Entitler
	// ActionsNeedWrite asks the Entitler for broker.Write for actions.
	ActionsNeedWrite bool
	// OpenActions lets everyone who reaches the handler run actions when
	// there is no Entitler. Default false: actions are refused with 403.
	OpenActions bool

	// NoDashboard turns the dashboard page at the root off (404), as
	// AMPS's Admin/Galvanometer "disabled" does; the tree stays.
	NoDashboard bool

	// AnonymousPaths, when set, matches the paths served without
	// authentication or entitlement (AMPS Admin/AnonymousPaths), tried
	// on the path as the Entitler sees it ("/amps", "/amps/instance/
	// replication") or the page's ("/", "/dashboard/app.js"), e.g.
	// `^/amps$` for a liveness probe. Actions on such a path still need
	// actions to be on (Entitler or OpenActions). Default nil: none.
	AnonymousPaths *regexp.Regexp
	// Headers are added to every response (AMPS Admin/Header).
	Headers http.Header
	// AllowOrigin, when set, lets the pages of the origins it matches
	// read the tree from a browser (Access-Control-Allow-Origin naming
	// the request's Origin, and Vary: Origin) and run actions (otherwise
	// refused when sent from another site). Default nil: no CORS header.
	// AMPS sends "*" when its AccessControlAllowOrigin is unset; not
	// here, where the statistics are open: any page a browser on the
	// admin server's network opens could read them.
	AllowOrigin *regexp.Regexp
}

// Handler serves a broker's admin tree. It samples the broker's statistics
// on a goroutine of its own until Close.
type Handler struct {
	b     *broker.Broker
	opts  Options
	log   *slog.Logger
	start time.Time
	hist  *history

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// NewHandler returns a Handler for b; opts may be nil. It panics on a
// negative Interval or HistorySize (a programming error). The caller must
// Close it to stop its sampling goroutine.
func NewHandler(b *broker.Broker, opts *Options) *Handler {
	h := &Handler{b: b, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	if opts != nil {
		h.opts = *opts
	}
	o := &h.opts
	if o.Interval < 0 || o.HistorySize < 0 {
		panic(fmt.Sprintf("admin: negative Interval %v or HistorySize %d", o.Interval, o.HistorySize))
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.HistorySize == 0 {
		o.HistorySize = DefaultHistorySize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.PathPrefix = strings.TrimSuffix(o.PathPrefix, "/")
	h.log = o.Logger
	h.hist = newHistory(o.HistorySize)
	h.hist.sample(b, time.Now())
	go h.sampler()
	return h
}

// Close stops the sampling goroutine and waits for it. The handler still
// answers afterwards, with the history frozen.
func (h *Handler) Close() error {
	h.stopOnce.Do(func() { close(h.stop) })
	<-h.done
	return nil
}

func (h *Handler) sampler() {
	defer close(h.done)
	t := time.NewTicker(h.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case now := <-t.C:
			h.hist.sample(h.b, now)
		}
	}
}

// Samples returns the history of the broker-wide counters, oldest first.
func (h *Handler) Samples() []Sample { return h.hist.samples() }

// httpError is an answer other than 200: a status and one line of text.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) error {
	return &httpError{status, fmt.Sprintf(format, args...)}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	for k, vs := range h.opts.Headers {
		for _, v := range vs {
			hdr.Add(k, v)
		}
	}
	hdr.Set("Cache-Control", "no-store")
	if h.opts.AllowOrigin != nil {
		hdr.Add("Vary", "Origin")
		if h.originAllowed(r) {
			hdr.Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
		}
	}
	if err := h.serve(w, r); err != nil {
		he := &httpError{http.StatusInternalServerError, err.Error()}
		errors.As(err, &he)
		switch he.status {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", "GET, HEAD, POST")
		case http.StatusUnauthorized:
			w.Header().Set("WWW-Authenticate", `Basic realm="`+basicRealm+`"`)
		}
		http.Error(w, he.msg, he.status)
	}
}

// request is a parsed request path: the node's segments from "amps" on
// and the representation its suffix asks for.
type request struct {
	segs   []string // e.g. ["amps","instance","clients","7"]; empty for "/"
	format string   // "", "json", "xml", "csv"
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost:
	default:
		return errorf(http.StatusMethodNotAllowed, "method %s not allowed: use GET", r.Method)
	}
	// The escaped path keeps "%2F" inside a segment: SOW ids are
	// "<topic>!<type>" and topics often hold slashes.
	p := r.URL.EscapedPath()
	if h.opts.PathPrefix != "" {
		rest, ok := strings.CutPrefix(p, h.opts.PathPrefix)
		if !ok || (rest != "" && rest[0] != '/') {
			return errorf(http.StatusNotFound, "path %q is outside the admin prefix %q", p, h.opts.PathPrefix)
		}
		p = rest
		if p == "" {
			// The root without its slash: the page's relative URLs need
			// it, so send the browser to "<last prefix segment>/",
			// relative, which a proxy's own prefix cannot break.
			// (http.Redirect would make it absolute.)
			w.Header().Set("Location", h.opts.PathPrefix[strings.LastIndexByte(h.opts.PathPrefix, '/')+1:]+"/")
			w.WriteHeader(http.StatusFound)
			return nil
		}
	}
	if p == "" {
		p = "/"
	}
	if isDashboardPath(p) {
		return h.serveDashboard(w, r, p)
	}
	req, err := parsePath(p)
	if err != nil {
		return err
	}
	isAction := len(req.segs) >= 2 && req.segs[1] == "administrator"
	if r.Method == http.MethodPost && !isAction {
		return errorf(http.StatusMethodNotAllowed, "method POST is only for actions under /amps/administrator")
	}
	user := ""
	if !h.anonymous("/" + strings.Join(req.segs, "/")) {
		if user, err = h.authenticate(r); err != nil {
			return err
		}
	}
	// check only asks whether an action would be allowed: it is a read.
	runs := isAction && isActionPath(req.segs) && req.segs[len(req.segs)-1] != actionCheck
	if runs && r.Method == http.MethodHead {
		return errorf(http.StatusMethodNotAllowed, "method HEAD does not run actions: use GET or POST")
	}
	if err := h.authorize(r, user, req.segs, runs); err != nil {
		return err
	}
	if req.format == "xml" {
		return errorf(http.StatusNotImplemented, "the .xml representation is not supported; use .json")
	}
	q := r.URL.Query()
	if !isAction && (q.Has("t0") || q.Has("t1") || req.format == "csv") {
		return h.serveSeries(w, r, req)
	}
	if isAction {
		return h.administrator(w, r, req, user)
	}
	if isReadyPath(req.segs) {
		return h.serveReady(w, r, req)
	}
	return h.serveTree(w, r, req)
}

// parsePath splits p into the node's segments and the suffix of the last
// one. Only paths under "/amps" name nodes.
func parsePath(p string) (request, error) {
	var req request
	if !strings.HasPrefix(p, "/") || strings.Contains(p, "//") {
		return req, errorf(http.StatusNotFound, "no admin node at %q", p)
	}
	req.segs = strings.Split(strings.TrimSuffix(p[1:], "/"), "/")
	for i, seg := range req.segs {
		u, err := url.PathUnescape(seg)
		if err != nil {
			return req, errorf(http.StatusBadRequest, "bad escape in path segment %q", seg)
		}
		req.segs[i] = u
	}
	last := &req.segs[len(req.segs)-1]
	for _, f := range []string{"json", "xml", "csv"} {
		if base, ok := strings.CutSuffix(*last, "."+f); ok {
			*last, req.format = base, f
			break
		}
	}
	if req.segs[0] != "amps" || slices.Contains(req.segs, "") {
		return req, errorf(http.StatusNotFound, "no admin node at %q", p)
	}
	return req, nil
}

// authenticate returns the request's user.
func (h *Handler) authenticate(r *http.Request) (string, error) {
	if h.opts.Authenticate == nil {
		return "", nil
	}
	u, err := h.opts.Authenticate(r)
	if err != nil {
		return "", errorf(http.StatusUnauthorized, "authentication failed: %v", err)
	}
	return u, nil
}

// authorize applies spec §3/§4.3: with an Entitler every path is asked
// for (Read; Write for actions when ActionsNeedWrite); without one,
// statistics are open and actions run only under OpenActions. Actions
// sent from another site's page (Sec-Fetch-Site: cross-site) are refused:
// a GET action is otherwise one <img> tag away.
func (h *Handler) authorize(r *http.Request, user string, segs []string, action bool) error {
	path := "/" + strings.Join(segs, "/")
	if action && r.Header.Get("Sec-Fetch-Site") == "cross-site" && !h.originAllowed(r) {
		return errorf(http.StatusForbidden, "action %s refused: sent from another site", path)
	}
	if !h.allowed(r, user, path, action) {
		if action && h.opts.Entitler == nil {
			h.log.Warn("admin action refused: actions are off", "path", path, "user", user)
			return errorf(http.StatusForbidden, "action %s refused: admin actions are off until the host allows them "+
				"(admin.Options.Entitler or OpenActions; ampsd -admin-open-actions, or an Admin Authentication or Entitlement element)", path)
		}
		h.log.Warn("admin request not entitled", "path", path, "user", user)
		return errorf(http.StatusForbidden, "user %q is not entitled to %s", user, path)
	}
	return nil
}

// allowed says whether user may read path, or run it when action. An
// anonymous path skips the Entitler, not the need for actions to be on.
func (h *Handler) allowed(r *http.Request, user, path string, action bool) bool {
	if h.opts.Entitler == nil {
		return !action || h.opts.OpenActions
	}
	if h.anonymous(path) {
		return true
	}
	p := broker.Read
	if action && h.opts.ActionsNeedWrite {
		p = broker.Write
	}
	return h.opts.Entitler.Entitled(&broker.Identity{UserID: user}, path, p)
}

// anonymous says whether path is served without authentication or
// entitlement (Options.AnonymousPaths).
func (h *Handler) anonymous(path string) bool {
	return h.opts.AnonymousPaths != nil && h.opts.AnonymousPaths.MatchString(path)
}

// originAllowed says whether the request comes from a page of an origin
// Options.AllowOrigin matches.
func (h *Handler) originAllowed(r *http.Request) bool {
	o := r.Header.Get("Origin")
	return h.opts.AllowOrigin != nil && o != "" && h.opts.AllowOrigin.MatchString(o)
}
