package broker

import (
	"sync/atomic"
	"time"
)

// Expiration in the cluster's order. On a node whose SOW topics are
// ordered (see "SOW topics" in backplane.go) a record's expiry is an
// update like any other: it must happen at one place in the topic's
// order, the same on every node, or an update racing it meets the record
// on one node and not on another (a delta then merges into different
// records). The rules:
//
//   - A record's version is the Ordinal of the ordered publish that last
//     wrote it (a delta's merge included), the same on every node.
//   - Its lifetime runs from when the order took that publish
//     (RemotePublish.OrderTime, natscluster: the stream's timestamp), not
//     from when this node applied it, so the deadline is the same on
//     every node, and a node that restarts and catches up applies a
//     record that expired long ago with a deadline long past; its "ts" is
//     that time too.
//   - The janitor does not remove a record whose deadline passed: it
//     hands the order an expire request for (topic, key, version)
//     (RemotePublish.Expire) and looks again after expireRetry, in case
//     the request was lost. Every node's janitor does so, about when the
//     deadline passes by its clock; the backplane stores the requests for
//     one version once (natscluster: a Nats-Msg-Id of topic, key and
//     version within the stream's duplicate window), and a second one
//     that gets through is a no-op (below).
//   - Every node applies a request in the order as expireRecords removes
//     a record locally (removed, with "expired" out-of-focus notices), but
//     only when the record still has the request's version: an update
//     ordered before the request changed the version (and restarted the
//     lifetime), a delete removed it, and then the request does nothing.
//     So every node removes the same records at the same place in the
//     order.
//   - While the node catches up (BackplaneState.CatchingUp) its janitor
//     requests nothing: the order it has not applied yet most likely holds
//     the other nodes' requests for what it finds expired; it asks once it
//     caught up, for what is still there.
//
// Decisions. The record is removed when the first request is applied, so
// the earliest janitor decides, to within a janitor tick: the nodes'
// clocks are assumed close (NTP), and a node whose clock runs ahead
// expires records early by as much. Checking the request's order time
// against the deadline on apply would make the decision the order's alone,
// but a request refused that way could not be repeated under the same
// deduplication id, and the record would outlive its lifetime by the
// duplicate window; we keep the simpler rule. The records stay in the store
// past their deadline until the request comes back through the order (a
// round trip, or the order's outage): a query meanwhile still returns
// them, as every node does until the order removes them.

// expireRetry is how long the janitor waits for the order to apply its
// expire request before it asks again (the request or its ack may be lost;
// a repeat within the backplane's duplicate window is stored once).
const expireRetry = 5 * time.Second

// ClusterExpiryStats are the figures of expiration in the cluster's order.
type ClusterExpiryStats struct {
	// ExpireRequests counts the expire requests this node's janitor
	// handed to the order, ExpireRequestFailures those the order refused
	// or did not confirm (asked again after expireRetry).
	ExpireRequests, ExpireRequestFailures int64
	// Expired counts the records the order's expire requests removed
	// here; ExpireStale the requests applied here that found their record
	// updated, deleted or expired already (no-ops).
	Expired, ExpireStale int64
}

// clusterExpiry holds the counters of ClusterExpiryStats.
type clusterExpiry struct {
	expireRequests, expireFailures, expired, expireStale atomic.Int64
}

func (c *clusterExpiry) expiryStats() ClusterExpiryStats {
	return ClusterExpiryStats{
		ExpireRequests:        c.expireRequests.Load(),
		ExpireRequestFailures: c.expireFailures.Load(),
		Expired:               c.expired.Load(),
		ExpireStale:           c.expireStale.Load(),
	}
}

// orderStamp is what an ordered apply gives the record it writes: its
// version and the instant (unix nanoseconds) its lifetime runs from.
type orderStamp struct {
	ver uint64
	at  int64
	// origin is set on the node that accepted the publish, which journals
	// it there (when its topic is journaled) as it applies it, so that the
	// journal gets it once and as merged; journalErr is why that append
	// failed (the publish is applied all the same: the order decided it).
	origin     bool
	journalErr string
	// journaled, when set, takes the journal's outcome of an append made
	// without waiting (AsyncAppender); handedOff is set once that append
	// was sent and journaled will be called.
	journaled func(Position, string)
	handedOff bool
}

// stamp sets rec's version, and its time when the order gave one; a nil
// s (a local publish) leaves rec as it is.
func (s *orderStamp) stamp(rec *record) {
	if s == nil {
		return
	}
	rec.ver = s.ver
	if s.at != 0 {
		rec.at = s.at
	}
}

// requestExpiries is the janitor's expiration on a node whose SOW topics
// are ordered: for each record whose deadline passed by now, an expire
// request to the order (see above).
func (b *Broker) requestExpiries(now int64) {
	due := b.expiry.due(now)
	if len(due) == 0 {
		return
	}
	c := b.cluster
	catchingUp := c.bp.State().CatchingUp
	again := now + int64(expireRetry)
	if catchingUp {
		again = now + int64(janitorTick)
	}
	var reqs []RemotePublish
	for _, k := range due {
		st := k.st
		st.mu.Lock()
		if rec := st.recs[k.key]; rec != nil && rec.exp != 0 && rec.exp <= now {
			// Looked at again unless the order removes or updates it.
			b.expiry.set(st, k.key, again)
			if !catchingUp {
				reqs = append(reqs, RemotePublish{MessageType: st.def.MessageType, Topic: st.topic, SOWKey: rec.key,
					Expire: true, ExpireVersion: rec.ver})
			}
		}
		st.mu.Unlock()
	}
	for i := range reqs {
		p := &reqs[i]
		c.expireRequests.Add(1)
		err := c.orderer.Order(p, func(err error) {
			if err != nil {
				c.expireFailures.Add(1)
				b.log.Debug("the cluster did not confirm an expire request; asking again later", "topic", p.Topic, "key", p.SOWKey, "err", err)
			}
		})
		if err != nil {
			c.expireFailures.Add(1)
			b.log.Debug("the cluster's order refused an expire request; asking again later", "topic", p.Topic, "key", p.SOWKey, "err", err)
		}
	}
}

// applyExpire applies an expire request for a record of st (r its
// router) in the cluster's order: the record goes, with "expired"
// out-of-focus notices, if it still has the request's version.
func (b *Broker) applyExpire(r *router, st *sowStore, p *RemotePublish) {
	c := b.cluster
	st.mu.Lock()
	defer st.mu.Unlock()
	rec := st.recs[p.SOWKey]
	if rec == nil || rec.ver != p.ExpireVersion {
		c.expireStale.Add(1)
		return
	}
	st.remove(rec.key)
	b.oofNotices(r.routes(st.topic), st.topic, rec, nil, OOFExpired)
	c.expired.Add(1)
}
