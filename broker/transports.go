package broker

import (
	"cmp"
	"fmt"
	"slices"
)

// TransportState describes one transport the broker knows, for an admin
// interface: by name, whether it accepts connections and how many it has.
type TransportState struct {
	Name        string
	Enabled     bool     // false after DisableTransport
	Addrs       []string // addresses of the listeners Serve runs under this name
	Connections int64    // open connections (and handshakes) of the transport
}

// knownTransportsLocked returns the transport names the broker knows: those
// of the listeners it serves, of open connections, of Options.Transports
// and those disabled; b.mu is held.
func (b *Broker) knownTransportsLocked() map[string]*TransportState {
	ts := make(map[string]*TransportState)
	get := func(name string) *TransportState {
		t := ts[name]
		if t == nil {
			t = &TransportState{Name: name, Enabled: !b.disabled[name]}
			ts[name] = t
		}
		return t
	}
	for l := range b.listeners {
		t := get(l.Name())
		t.Addrs = append(t.Addrs, l.Addr().String())
	}
	for name, n := range b.transportConns {
		get(name).Connections = int64(n)
	}
	for name := range b.opts.Transports {
		get(name)
	}
	for name := range b.disabled {
		get(name)
	}
	return ts
}

// Transports describes the transports the broker knows (those it serves
// listeners of, those with open connections, those named in
// Options.Transports and those disabled), in name order.
func (b *Broker) Transports() []TransportState {
	b.mu.Lock()
	ts := b.knownTransportsLocked()
	b.mu.Unlock()
	out := make([]TransportState, 0, len(ts))
	for _, t := range ts {
		slices.Sort(t.Addrs)
		out = append(out, *t)
	}
	slices.SortFunc(out, func(a, b TransportState) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// DisableTransport stops the broker taking connections of the transport
// name (AMPS's admin "disable"): its listeners stay open but each
// connection they accept is closed at once (so listeners the host owns
// behave like the broker's own), ServeConn refuses its connections with
// ErrTransportDisabled, and its open connections are closed with that
// cause. Cached entitlement answers are forgotten, as for
// ResetEntitlements. The name must be one Transports lists; otherwise it
// returns ErrUnknownTransport and changes nothing.
func (b *Broker) DisableTransport(name string) error {
	b.mu.Lock()
	if _, ok := b.knownTransportsLocked()[name]; !ok {
		b.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrUnknownTransport, name)
	}
	b.disabled[name] = true
	var victims []*session
	for s := range b.sessions {
		if s.info.Transport == name {
			victims = append(victims, s)
		}
	}
	b.mu.Unlock()
	b.log.Info("transport disabled", "transport", name, "dropped", len(victims))
	for _, s := range victims {
		s.close(ErrTransportDisabled)
	}
	b.resetEntitlementCaches()
	return nil
}

// EnableTransport undoes DisableTransport: the transport name takes
// connections again. Enabling a transport that is enabled does nothing.
// An unknown name returns ErrUnknownTransport.
func (b *Broker) EnableTransport(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.knownTransportsLocked()[name]; !ok {
		return fmt.Errorf("%w: %q", ErrUnknownTransport, name)
	}
	if b.disabled[name] {
		delete(b.disabled, name)
		b.log.Info("transport enabled", "transport", name)
	}
	return nil
}

// Disconnect closes the network connection with the given ID (ConnStats.ID,
// ConnEvent.ID) without a farewell, its cause ErrAdminDisconnect. An ID of
// no open connection returns ErrUnknownConn.
func (b *Broker) Disconnect(id uint64) error {
	b.mu.Lock()
	var victim *session
	for s := range b.sessions {
		if s.id == id {
			victim = s
			break
		}
	}
	b.mu.Unlock()
	if victim == nil {
		return fmt.Errorf("%w: id %d", ErrUnknownConn, id)
	}
	victim.log.Info("closing connection: disconnected by the administrator")
	victim.close(ErrAdminDisconnect)
	return nil
}

// SubscriptionState describes one subscription, for an admin interface.
type SubscriptionState struct {
	ConnID      uint64 // the owner's ConnStats.ID (in-process clients have their own IDs)
	ClientName  string // the owner's client name
	InProcess   bool   // the owner is an in-process Client
	SubID       string // the subscription's id
	Topic       string // the topic or topic regex
	Regex       bool   // Topic is a regular expression
	Filter      string // the content filter; "" for none
	MessageType string
}

// Subscriptions describes every active subscription, by message type,
// then owner ID, then subscription id.
func (b *Broker) Subscriptions() []SubscriptionState {
	var out []SubscriptionState
	add := func(mt string, s *subscription) {
		st := SubscriptionState{
			ConnID: s.owner.id, ClientName: s.owner.name, InProcess: s.handler != nil,
			SubID: s.id, Topic: s.topic, Regex: s.re != nil, MessageType: mt,
		}
		if s.filter != nil {
			st.Filter = s.filter.String()
		}
		out = append(out, st)
	}
	b.routersMu.RLock()
	for mt, r := range b.routers {
		r.mu.RLock()
		for s := range r.regex {
			add(mt, s)
		}
		for _, ss := range r.exact {
			for _, s := range ss {
				add(mt, s)
			}
		}
		r.mu.RUnlock()
	}
	b.routersMu.RUnlock()
	slices.SortFunc(out, func(a, b SubscriptionState) int {
		return cmp.Or(cmp.Compare(a.MessageType, b.MessageType), cmp.Compare(a.ConnID, b.ConnID), cmp.Compare(a.SubID, b.SubID))
	})
	return out
}

// ResetAllEntitlements forgets every cached entitlement answer and
// disconnects every logged-on network connection, which must log on again
// to be checked anew (AMPS's admin entitlement reset re-initialises the
// module; ResetEntitlements does the same for one user).
func (b *Broker) ResetAllEntitlements() {
	b.resetEntitlementsOf(func(*session, string) bool { return true })
}

// ResetTransportEntitlements is ResetAllEntitlements for the connections
// of one transport (AMPS's admin reset of one transport's entitlements).
// An unknown name returns ErrUnknownTransport and changes nothing.
func (b *Broker) ResetTransportEntitlements(name string) error {
	b.mu.Lock()
	_, ok := b.knownTransportsLocked()[name]
	b.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownTransport, name)
	}
	b.resetEntitlementsOf(func(s *session, _ string) bool { return s.info.Transport == name })
	return nil
}

// Name is the broker's instance name (Options.Name).
func (b *Broker) Name() string { return b.opts.Name }

// Version is the version the broker reports (Options.Version).
func (b *Broker) Version() string { return b.opts.Version }
