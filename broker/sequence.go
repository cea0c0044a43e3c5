package broker

import "sync"

// Publish sequence numbers. A client with a publish store numbers its
// publishes ("s") and, after a reconnect, publishes again every message
// the broker has not acknowledged as persisted. Without a transaction log
// the broker still keeps, per client name and in memory only, the highest
// sequence it has processed: a publish at or below it is a duplicate,
// dropped and acknowledged, and the logon ack tells a client where it
// stands ("s", and "bm" = "<client name hash>|<sequence>|"). With a
// transaction log the marks start from the journal's (see persist.go).

// sequences is the highest publish sequence processed per client name.
type sequences struct {
	mu   sync.Mutex
	last map[string]uint64
}

// duplicate reports whether seq for name is at or below the highest
// processed (a replay). Publishes without a client name are never
// duplicates.
func (q *sequences) duplicate(name string, seq uint64) bool {
	if name == "" {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	last, ok := q.last[name]
	return ok && seq <= last
}

// processed records that seq for name was processed. A refused publish is
// not recorded, so its replay is processed again (its failure ack may have
// been lost with the connection).
func (q *sequences) processed(name string, seq uint64) {
	if name == "" {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.last == nil {
		q.last = make(map[string]uint64)
	}
	if seq > q.last[name] {
		q.last[name] = seq
	}
}

// seed sets the highest sequences of the names in hw (the journal's
// durable high-water marks at start), so that a publish store's replay of
// what was processed before a restart is a duplicate.
func (q *sequences) seed(hw map[string]uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for name, seq := range hw {
		if name == "" {
			continue
		}
		if q.last == nil {
			q.last = make(map[string]uint64)
		}
		q.last[name] = max(q.last[name], seq)
	}
}

// highest is the highest sequence processed for name, 0 when none.
func (q *sequences) highest(name string) uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.last[name]
}
