package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/ampsbroker/ampsbroker/broker"
)

// The actions (spec §1.5, §4.3) are the last segment of a path under
// /amps/administrator; fetching it runs it. Listing a level above is
// harmless.
const (
	actionDisconnect = "disconnect"
	actionEnable     = "enable"
	actionDisable    = "disable"
	actionReset      = "reset"
	actionCheck      = "check"
	// adminTransport is the name AMPS gives its admin server as a
	// transport in entitlement paths.
	adminTransport = "amps-admin"
)

// administratorListing is the /amps/administrator node: each object with
// the actions it offers, valued "action".
func administratorListing(st broker.Stats, ts []broker.TransportState) node {
	clients := []node{}
	for _, c := range st.Conns {
		clients = append(clients, node{"id": itoa(c.ID), actionDisconnect: "action"})
	}
	transports := []node{}
	for _, t := range ts {
		transports = append(transports, node{"id": t.Name, actionEnable: "action", actionDisable: "action"})
	}
	// Under entitlement/transports: each transport's reset, and the
	// check of the admin server itself.
	entTransports := []node{{"id": adminTransport, actionCheck: "action"}}
	for _, t := range ts {
		entTransports = append(entTransports, node{"id": t.Name, actionReset: "action"})
	}
	return node{
		"authorization": node{
			"entitlement": node{
				actionReset:  "action",
				"transports": entTransports,
				"transport":  entTransports,
			},
		},
		"clients":    clients,
		"transports": transports,
	}
}

// isActionPath says whether segs (from "amps") names an action rather
// than a level of the administrator listing.
func isActionPath(segs []string) bool {
	if len(segs) < 3 {
		return false
	}
	switch segs[len(segs)-1] {
	case actionDisconnect, actionEnable, actionDisable, actionReset, actionCheck:
		return true
	}
	return false
}

// administrator serves /amps/administrator: a listing, or an action.
func (h *Handler) administrator(w http.ResponseWriter, r *http.Request, req request, user string) error {
	if !isActionPath(req.segs) {
		if r.Method == http.MethodPost {
			return errorf(http.StatusMethodNotAllowed, "method POST is only for actions; /%s lists them", strings.Join(req.segs, "/"))
		}
		return h.serveTree(w, r, req)
	}
	path := "/" + strings.Join(req.segs, "/")
	a := req.segs[2:] // after "amps", "administrator"
	var err error
	switch {
	case len(a) == 3 && a[0] == "clients" && a[2] == actionDisconnect:
		err = h.disconnect(a[1])
	case len(a) == 3 && a[0] == "transports" && (a[2] == actionEnable || a[2] == actionDisable):
		err = h.setTransport(a[1], a[2] == actionEnable)
	case len(a) == 3 && a[0] == "authorization" && a[1] == "entitlement" && a[2] == actionReset:
		err = h.resetEntitlements(r)
	case len(a) == 5 && a[0] == "authorization" && a[1] == "entitlement" && (a[2] == "transports" || a[2] == "transport") &&
		a[3] == adminTransport && a[4] == actionCheck:
		return h.check(w, r, user)
	case len(a) == 5 && a[0] == "authorization" && a[1] == "entitlement" && (a[2] == "transports" || a[2] == "transport") &&
		a[4] == actionReset:
		err = h.resetTransport(r, a[3])
	default:
		return errorf(http.StatusNotFound, "no admin action at %s", path)
	}
	if err != nil {
		return err
	}
	h.log.Info("admin action", "path", path, "user", user)
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(node{"amps": node{"administrator": node{"result": "ok", "path": path}}})
}

func (h *Handler) disconnect(id string) error {
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return errorf(http.StatusBadRequest, "client id %q is not a number", id)
	}
	if err := h.b.Disconnect(n); err != nil {
		if errors.Is(err, broker.ErrUnknownConn) {
			return errorf(http.StatusNotFound, "no client with id %s", id)
		}
		return err
	}
	return nil
}

func (h *Handler) setTransport(name string, enable bool) error {
	do := h.b.DisableTransport
	if enable {
		do = h.b.EnableTransport
	}
	if err := do(name); err != nil {
		if errors.Is(err, broker.ErrUnknownTransport) {
			return errorf(http.StatusNotFound, "no transport named %q", name)
		}
		return err
	}
	return nil
}

// resetEntitlements resets one user's (query parameter user_id) or, with
// no parameter, everyone's entitlements: the logged-on users are
// disconnected to be checked again when they log on.
func (h *Handler) resetEntitlements(r *http.Request) error {
	q := r.URL.Query()
	for k := range q {
		if k != "user_id" {
			return errorf(http.StatusBadRequest, "unknown parameter %q: reset takes only user_id", k)
		}
	}
	if !q.Has("user_id") {
		h.b.ResetAllEntitlements()
		return nil
	}
	u := q.Get("user_id")
	if u == "" {
		return errorf(http.StatusBadRequest, "parameter user_id is empty")
	}
	h.b.ResetEntitlements(u)
	return nil
}

// resetTransport resets the entitlements of the connections of one
// transport; it takes no parameter.
func (h *Handler) resetTransport(r *http.Request, name string) error {
	if len(r.URL.Query()) > 0 {
		return errorf(http.StatusBadRequest, "a transport's reset takes no parameter")
	}
	if err := h.b.ResetTransportEntitlements(name); err != nil {
		if errors.Is(err, broker.ErrUnknownTransport) {
			return errorf(http.StatusNotFound, "no transport named %q", name)
		}
		return err
	}
	return nil
}

// check answers "true" or "false": whether the requester may run the
// action at the query parameter path (spec §1.5), without running it.
func (h *Handler) check(w http.ResponseWriter, r *http.Request, user string) error {
	p := r.URL.Query().Get("path")
	if p == "" {
		return errorf(http.StatusBadRequest, "parameter path is missing: check?path=/amps/administrator/...")
	}
	req, err := parsePath(p)
	if err != nil || len(req.segs) < 2 || req.segs[1] != "administrator" || !isActionPath(req.segs) {
		return errorf(http.StatusBadRequest, "parameter path %q names no admin action", p)
	}
	ok := h.allowed(r, user, "/"+strings.Join(req.segs, "/"), true)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err = w.Write([]byte(btoa(ok)))
	return err
}
