package natscluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Defaults of JournalConfig.
const (
	// DefaultJournalStream is the journal's stream name.
	DefaultJournalStream = "AMPS_JOURNAL"
	// DefaultJournalPrefix is the subject prefix of journal entries:
	// "amps.journal.<message type>.<topic>".
	DefaultJournalPrefix = "amps.journal"
	// DefaultJournalReplicas is the stream's replication factor: 1, what a
	// single NATS node can hold. A cluster wants 3.
	DefaultJournalReplicas = 1
	// DefaultMaxInFlight bounds the appends sent and not yet acknowledged
	// by JetStream; Append waits for room beyond it.
	DefaultMaxInFlight = 4096
	// DefaultAckTimeout is how long Append waits for JetStream's
	// acknowledgement before it fails.
	DefaultAckTimeout = 5 * time.Second
	// DefaultRequestTimeout bounds one try of a JetStream API request the
	// journal makes (stream info, message get, purge); a try that times
	// out or finds no responder is made again (a request can be lost while
	// a stream elects a new leader). A consumer's creation starts with
	// shorter tries and grows them up to it (follow.go).
	DefaultRequestTimeout = 2 * time.Second
	// DefaultOperationTimeout bounds one journal operation with all its
	// tries (FindTime, Truncate, a cursor's start) and a cursor's wait for
	// an entry it knows is stored.
	DefaultOperationTimeout = 15 * time.Second
	// DefaultCursorBuffer is how many entries a cursor's consumer (and the
	// follower's) fetches ahead of its reader.
	DefaultCursorBuffer = 256
	// statsTimeout bounds the stream-state request of Stats, which an
	// admin page may call while NATS is unreachable.
	statsTimeout = time.Second
	// highWaterKey is the key of the high-water checkpoint in the bucket.
	highWaterKey = "high-waters"
	// leaderWait is the pause between tries of a request that found no
	// responder or timed out: a stream or bucket just created, or whose
	// leader was lost, has no leader for a moment, and its requests go
	// unanswered until one is elected.
	leaderWait = 50 * time.Millisecond
	// casRetries bounds the compare-and-set rounds of a checkpoint update
	// that other nodes race.
	casRetries = 10
)

// JournalConfig configures a journal on JetStream. Zero fields take the
// defaults above.
type JournalConfig struct {
	// Stream is the JetStream stream's name; every node of a cluster that
	// shares one transaction log names the same stream.
	Stream string
	// Prefix is the subject prefix of entries (see Subjects).
	Prefix string
	// Replicas is the stream's replication factor: an entry is durable,
	// and Append returns, once that many nodes (a quorum of them) hold it.
	Replicas int
	// Storage is the stream's storage (file unless set to memory).
	Storage jetstream.StorageType
	// HighWaterBucket is the key-value bucket of the high-water checkpoint
	// (Stream + "_HW" when empty).
	HighWaterBucket string
	// MaxInFlight bounds the appends awaiting their acknowledgement.
	MaxInFlight int
	// AckTimeout bounds the wait for one append's acknowledgement.
	AckTimeout time.Duration
	// RequestTimeout bounds one try of a JetStream API request.
	RequestTimeout time.Duration
	// OperationTimeout bounds one journal operation with its retries.
	OperationTimeout time.Duration
	// CursorBuffer is how many entries a cursor fetches ahead.
	CursorBuffer int
	// DuplicateWindow is the stream's duplicate window (default
	// DefaultDuplicateWindow): a sequenced entry appended again within it
	// (its publisher resent it after the first append's ack was lost) is
	// stored once (see dedup.go and AppendAsync). An existing stream with
	// another window is updated to this one.
	DuplicateWindow time.Duration
	// Logger gets the journal's notices (discarded when nil).
	Logger *slog.Logger
}

func (c *JournalConfig) defaults() {
	if c.Stream == "" {
		c.Stream = DefaultJournalStream
	}
	if c.Prefix == "" {
		c.Prefix = DefaultJournalPrefix
	}
	if c.Replicas <= 0 {
		c.Replicas = DefaultJournalReplicas
	}
	if c.HighWaterBucket == "" {
		c.HighWaterBucket = c.Stream + "_HW"
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.OperationTimeout <= 0 {
		c.OperationTimeout = DefaultOperationTimeout
	}
	if c.CursorBuffer <= 0 {
		c.CursorBuffer = DefaultCursorBuffer
	}
	if c.DuplicateWindow <= 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Journal is a broker.Journal on a JetStream stream.
//
// Positions are the stream's sequence numbers. A new stream starts at
// broker.FirstPositionSeed, so positions keep rising above those of a
// journal that was deleted. Several nodes may append to one stream: every
// node sees the same positions, so a bookmark is valid on any of them.
//
// Append sends the entry with an asynchronous publish (at most MaxInFlight
// awaiting acknowledgement, across all callers) and returns once JetStream
// acknowledged it, stored on a quorum of the Replicas nodes: the position is the
// sequence the acknowledgement names, and the entry is durable when Append
// returns. Callers that append concurrently share the window, so their
// round trips overlap. JetStream stores a stream in sequence order, so an
// acknowledged sequence means every lower one is stored too: Durable is one
// above the highest sequence this node has seen acknowledged or read, and a
// follower (see follow) keeps it at the stream's tail when other nodes
// append.
//
// Entry times rise per node: Append stamps an entry no earlier than the
// previous one it sent. Entries of several nodes interleave in the stream
// with their own clocks; FindTime's search assumes those are close.
//
// The high-water marks are rebuilt at open from the stream's headers (see
// HighWaterHeader) above a checkpoint kept in a key-value bucket; Truncate
// folds the marks of the entries it removes into that checkpoint before
// purging them, so no mark is lost.
type Journal struct {
	cfg      JournalConfig
	js       jetstream.JetStream
	stream   jetstream.Stream
	kv       jetstream.KeyValue
	subjects Subjects
	log      *slog.Logger
	done     chan struct{}   // closed when Close has finished
	ctx      context.Context // ends when Close starts: cancels requests in progress
	cancel   context.CancelFunc
	window   chan struct{} // one token per append in flight
	inflight sync.WaitGroup
	acks     atomic.Int64 // acknowledgements received (Stats' Syncs)

	sendMu   sync.Mutex // stamps times and sends in one order
	lastTime time.Time  // guarded by sendMu

	mu       sync.Mutex
	closed   bool // Close has started
	finished bool // Close has finished
	first    broker.Position
	durable  broker.Position
	changed  chan struct{}
	high     map[string]uint64
	cursors  map[*cursor]struct{}
	stats    broker.JournalStats // last figures read from the stream

	// followed is closed when the follower (see follow) has returned;
	// deletes counts the deletes of consumers the follower and cursors
	// gave up on; id and serial name those consumers.
	followed chan struct{}
	deletes  sync.WaitGroup
	id       string
	serial   atomic.Int64
	// lastTurn is closed once the latest append's callback has run
	// (under sendMu; see AppendAsync).
	lastTurn chan struct{}
}

var _ broker.Journal = (*Journal)(nil)

// OpenJournal opens the journal in cfg.Stream through nc, creating the
// stream and its high-water bucket when missing, and rebuilds the
// high-water marks. The connection stays the caller's; close the journal
// before it.
func OpenJournal(ctx context.Context, nc *nats.Conn, cfg JournalConfig) (*Journal, error) {
	cfg.defaults()
	subjects, err := NewSubjects(cfg.Prefix)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(cfg.MaxInFlight+1),
		jetstream.WithPublishAsyncTimeout(cfg.AckTimeout),
		jetstream.WithDefaultTimeout(cfg.RequestTimeout))
	if err != nil {
		return nil, fmt.Errorf("natscluster: journal %s: %w", cfg.Stream, err)
	}
	j := &Journal{
		cfg: cfg, js: js, subjects: subjects, log: cfg.Logger,
		done: make(chan struct{}), window: make(chan struct{}, cfg.MaxInFlight),
		changed: make(chan struct{}), high: map[string]uint64{}, cursors: map[*cursor]struct{}{},
	}
	j.ctx, j.cancel = context.WithCancel(context.Background())
	j.id = nuid.Next()
	for _, step := range []func(context.Context) error{j.openStream, j.rebuild, j.follow} {
		if err := step(ctx); err != nil {
			j.cancel()
			j.deletes.Wait()
			return nil, err
		}
	}
	return j, nil
}

// openStream binds to the stream, creating it (and the bucket) if needed.
func (j *Journal) openStream(ctx context.Context) error {
	s, err := ensure(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		return j.js.Stream(ctx, j.cfg.Stream)
	}, func(ctx context.Context) (jetstream.Stream, error) {
		return j.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:       j.cfg.Stream,
			Subjects:   []string{j.subjects.All()},
			Replicas:   j.cfg.Replicas,
			Storage:    j.cfg.Storage,
			FirstSeq:   uint64(broker.FirstPositionSeed(time.Now())),
			Duplicates: j.cfg.DuplicateWindow,
		})
	}, jetstream.ErrStreamNotFound)
	if err != nil {
		return fmt.Errorf("natscluster: journal stream %s: %w", j.cfg.Stream, err)
	}
	if subj := s.CachedInfo().Config.Subjects; !slices.Contains(subj, j.subjects.All()) {
		return fmt.Errorf("natscluster: journal stream %s takes subjects %q, not the configured prefix's %q",
			j.cfg.Stream, subj, j.subjects.All())
	}
	if got := s.CachedInfo().Config.Replicas; got != j.cfg.Replicas {
		j.log.Warn("journal stream has another replication factor than configured; keeping the stream's",
			"stream", j.cfg.Stream, "replicas", got, "configured", j.cfg.Replicas)
	}
	ensureDuplicateWindow(ctx, j.js, s, j.cfg.DuplicateWindow, j.log)
	j.stream = s
	// Look the bucket up before creating it: a create (or update) is a
	// meta-leader operation that waits out an election, a lookup is not.
	kv, err := ensure(ctx, func(ctx context.Context) (jetstream.KeyValue, error) {
		return j.js.KeyValue(ctx, j.cfg.HighWaterBucket)
	}, func(ctx context.Context) (jetstream.KeyValue, error) {
		return j.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: j.cfg.HighWaterBucket, Replicas: j.cfg.Replicas, Storage: j.cfg.Storage,
			Description: "high-water marks of the entries purged from journal " + j.cfg.Stream,
		})
	}, jetstream.ErrBucketNotFound)
	if err != nil {
		return fmt.Errorf("natscluster: journal bucket %s: %w", j.cfg.HighWaterBucket, err)
	}
	j.kv = kv
	return nil
}

// checkpoint is the stored high-water state: the marks of every entry up
// to and including stream sequence Through.
type checkpoint struct {
	Through uint64            `json:"through"`
	Marks   map[string]uint64 `json:"marks"`
}

// readCheckpoint returns the checkpoint and its revision (0 when none).
func (j *Journal) readCheckpoint(ctx context.Context) (checkpoint, uint64, error) {
	cp := checkpoint{Marks: map[string]uint64{}}
	var kve jetstream.KeyValueEntry
	err := j.retry(ctx, func(ctx context.Context) (err error) {
		kve, err = j.kv.Get(ctx, highWaterKey)
		return err
	})
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return cp, 0, nil
	}
	if err != nil {
		return cp, 0, fmt.Errorf("natscluster: journal %s: read high-water checkpoint: %w", j.cfg.Stream, err)
	}
	if err := json.Unmarshal(kve.Value(), &cp); err != nil {
		return cp, 0, fmt.Errorf("natscluster: journal %s: high-water checkpoint: %w", j.cfg.Stream, err)
	}
	if cp.Marks == nil {
		cp.Marks = map[string]uint64{}
	}
	return cp, kve.Revision(), nil
}

// rebuild reads the stream's bounds, the checkpoint, the marks of the
// entries above it, and the last entry's time.
func (j *Journal) rebuild(ctx context.Context) error {
	var info *jetstream.StreamInfo
	err := j.retry(ctx, func(ctx context.Context) (err error) {
		info, err = j.stream.Info(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("natscluster: journal %s: stream info: %w", j.cfg.Stream, err)
	}
	st := info.State
	j.first, j.durable = broker.Position(st.FirstSeq), broker.Position(st.LastSeq+1)
	if st.Msgs == 0 {
		j.first = j.durable
	}
	cp, _, err := j.readCheckpoint(ctx)
	if err != nil {
		return err
	}
	maps.Copy(j.high, cp.Marks)
	from := max(j.first, broker.Position(cp.Through+1))
	err = j.scan(ctx, from, j.durable, func(_ uint64, h nats.Header) error {
		return addHighWater(j.high, h)
	})
	if err != nil {
		return err
	}
	if st.Msgs > 0 {
		e, err := j.get(ctx, st.LastSeq)
		if err != nil {
			return err
		}
		j.lastTime = e.Time
	}
	return nil
}

// follow starts the follower: a consumer of the entries' headers from the
// tail on, which raises Durable and the marks by every entry stored, this
// node's and other nodes'. Without it a node would not see the entries
// others append until it appended itself. It costs every node the headers
// (about a hundred bytes) of every entry. Its consumers come and go as the
// SOW order's do (follow.go): one at a time, made again at once after the
// last entry it handled when one reports trouble, so a lost NATS node
// pauses it for a fraction of a second. follow returns once the first
// consumer is made (or ctx ends); the follower runs until Close.
func (j *Journal) follow(ctx context.Context) error {
	j.mu.Lock()
	next := uint64(j.durable) // the first sequence the follower has not handled
	j.mu.Unlock()
	r := &resumer{spec: j.followSpec("journal follower", true), name: j.consumerName("amps_journal"),
		from: func() uint64 { return next }}
	c, err := r.open(ctx)
	if err != nil {
		return fmt.Errorf("natscluster: journal %s: follow from %d: %w", j.cfg.Stream, next, err)
	}
	j.followed = make(chan struct{})
	go func() {
		defer close(j.followed)
		for {
			err := j.readFollowed(c, &next)
			c.end()
			if j.ctx.Err() != nil {
				return
			}
			r.lost(c, err)
			if c, err = r.open(j.ctx); err != nil {
				return // only when Close started
			}
		}
	}()
	return nil
}

// readFollowed handles what the follower's consumer c delivers, each entry
// from *next on once, until c reports trouble or Close starts.
func (j *Journal) readFollowed(c *streamConsumer, next *uint64) error {
	for {
		m, md, err := c.next(j.ctx)
		if err != nil {
			return err
		}
		if md.Sequence.Stream < *next {
			continue
		}
		*next = md.Sequence.Stream + 1
		client, seq := "", uint64(0)
		if v := m.Headers().Get(HighWaterHeader); v != "" {
			if client, seq, err = parseHighWater(v); err != nil {
				j.log.Warn("journal follower: bad high-water header", "stream", j.cfg.Stream, "entry", md.Sequence.Stream, "err", err)
			}
		}
		j.advance(md.Sequence.Stream, client, seq)
	}
}

// followSpec is the follower's and cursors' consumers (follow.go): every
// subject of the stream (headers only when asked), CursorBuffer at a time,
// deleted while the journal is open.
func (j *Journal) followSpec(what string, headersOnly bool) *followSpec {
	return &followSpec{
		js: j.js, stream: j.cfg.Stream, filter: j.subjects.All(), headersOnly: headersOnly,
		buffer: j.cfg.CursorBuffer, pullBatch: true, requestTimeout: j.cfg.RequestTimeout,
		what: what, log: j.log, life: j.ctx, deletes: &j.deletes,
	}
}

// consumerName returns a function naming consumers kind_<journal>_<n>,
// unique in the cluster.
func (j *Journal) consumerName(kind string) func() string {
	return func() string {
		return fmt.Sprintf("%s_%s_%d", kind, j.id, j.serial.Add(1))
	}
}

// retry calls fn, each try bounded by RequestTimeout, again after
// leaderWait for as long as a try times out or finds no responder (see
// leaderWait) and ctx lasts (retrying).
func (j *Journal) retry(ctx context.Context, fn func(context.Context) error) error {
	return retrying(ctx, j.cfg.RequestTimeout, leaderWait, func(err error) bool {
		return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded)
	}, fn)
}

// addHighWater raises marks by a message's high-water header, if any.
func addHighWater(marks map[string]uint64, h nats.Header) error {
	v := h.Get(HighWaterHeader)
	if v == "" {
		return nil
	}
	client, seq, err := parseHighWater(v)
	if err != nil {
		return err
	}
	if seq > marks[client] {
		marks[client] = seq
	}
	return nil
}

// scan calls fn with the headers of each entry from from up to (not
// including) to, in order, through consumers made as the follower's are
// (a lost one is made again from the next entry).
func (j *Journal) scan(ctx context.Context, from, to broker.Position, fn func(uint64, nats.Header) error) error {
	next := uint64(from)
	r := &resumer{spec: j.followSpec("journal scan", true), name: j.consumerName("amps_scan"),
		from: func() uint64 { return next }}
	for next < uint64(to) {
		c, err := r.open(ctx)
		if err != nil {
			return fmt.Errorf("natscluster: journal %s: scan from %d to %d: %w", j.cfg.Stream, next, to, err)
		}
		err = j.scanWith(ctx, c, &next, to, fn)
		c.end()
		if err == nil || ctx.Err() != nil || !errors.Is(err, errConsumerLost) {
			r.spec.delete(c.name)
			return err
		}
		r.lost(c, err)
	}
	return nil
}

// errConsumerLost wraps the trouble a consumer reported, after which scan
// makes another.
var errConsumerLost = errors.New("consumer lost")

// scanWith calls fn for what c delivers from *next on, up to to.
func (j *Journal) scanWith(ctx context.Context, c *streamConsumer, next *uint64, to broker.Position, fn func(uint64, nats.Header) error) error {
	for *next < uint64(to) {
		m, md, err := c.next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("natscluster: journal %s: scan at %d of %d: %w", j.cfg.Stream, *next, to, err)
			}
			return fmt.Errorf("%w: %w", errConsumerLost, err)
		}
		seq := md.Sequence.Stream
		if seq < *next {
			continue
		}
		if seq >= uint64(to) {
			return nil
		}
		if err := fn(seq, m.Headers()); err != nil {
			return fmt.Errorf("natscluster: journal %s: entry %d: %w", j.cfg.Stream, seq, err)
		}
		*next = seq + 1
	}
	return nil
}

// get reads the entry at seq (the first at or after seq when it is gone).
func (j *Journal) get(ctx context.Context, seq uint64) (broker.Entry, error) {
	var m *jetstream.RawStreamMsg
	err := j.retry(ctx, func(ctx context.Context) (err error) {
		m, err = j.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(j.subjects.All()))
		return err
	})
	if err != nil {
		return broker.Entry{}, err
	}
	e, err := decodeEntry(m.Data)
	if err != nil {
		return broker.Entry{}, fmt.Errorf("natscluster: journal %s: entry %d: %w", j.cfg.Stream, m.Sequence, err)
	}
	e.Position = broker.Position(m.Sequence)
	return e, nil
}

// advance raises Durable to above seq (a sequence known stored) and the
// marks by a sequenced entry's (client, sequence).
func (j *Journal) advance(seq uint64, client string, sequence uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.finished { // Durable no longer changes once Done is closed
		return
	}
	if client != "" && sequence > j.high[client] {
		j.high[client] = sequence
	}
	if p := broker.Position(seq + 1); p > j.durable {
		j.durable = p
		close(j.changed)
		j.changed = make(chan struct{})
	}
}

// Append implements broker.Journal: it returns once JetStream has stored
// the entry with the stream's replication (see Journal).
func (j *Journal) Append(e *broker.Entry) (broker.Position, error) {
	type result struct {
		pos broker.Position
		err error
	}
	ch := make(chan result, 1)
	if err := j.AppendAsync(e, func(pos broker.Position, err error) { ch <- result{pos, err} }); err != nil {
		return 0, err
	}
	r := <-ch
	e.Position = r.pos
	return r.pos, r.err
}

// AppendAsync sends e and returns without waiting for JetStream (it waits
// only for room in the in-flight window). done is called exactly once, on
// a goroutine of the journal, with e's position once JetStream stored it
// with the stream's replication (Durable is above it by then), or with the
// error that kept it from being stored (then the entry may or may not be in
// the stream: an acknowledgement lost to a timeout leaves it unknown).
// Entries sent by one caller are stored in the order of its calls, so a
// publisher's order is kept without waiting for each entry in turn, and
// the done calls come in the order of the AppendAsync calls (one after
// the other, never overlapping), so a caller learns its outcomes in its
// order. done must not call Append. Like
// Append, it stamps e.Time and copies e.Body; unlike Append it leaves
// e.Position to done. An error returned (closed journal, unmappable topic)
// means done is not called.
//
// A sequenced entry (client name and sequence) whose twin the stream
// stored within its duplicate window (an append whose acknowledgement was
// lost, resent by the publisher through this node or another) is not
// stored again: done gets the position of the stored one (which keeps its
// own time, not e.Time). The broker then routes the publish to live
// subscribers with that position, which is right when the first append
// failed, as its node refused the publish and routed it nowhere; when the
// first append succeeded and the resend raced the publish's arrival on
// this node (see the broker's backplane rules), live subscribers get it
// twice, as without deduplication, but the journal, and so every replay,
// holds it once.
func (j *Journal) AppendAsync(e *broker.Entry, done func(broker.Position, error)) error {
	subject, err := j.subjects.Subject(e.MessageType, e.Topic)
	if err != nil {
		return fmt.Errorf("natscluster: journal append: %w", err)
	}
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return broker.ErrJournalClosed
	}
	j.inflight.Add(1)
	j.mu.Unlock()
	select {
	case j.window <- struct{}{}:
	case <-j.ctx.Done(): // Close has started
		j.inflight.Done()
		return broker.ErrJournalClosed
	}
	msg := &nats.Msg{Subject: subject, Header: nats.Header{}}
	client := ""
	if e.ClientName != "" && e.Sequence > 0 {
		client = e.ClientName
		msg.Header.Set(HighWaterHeader, highWaterValue(e.ClientName, e.Sequence))
		if e.Kind == broker.EntryPublish {
			// A publish's resend is stored once. Not a removal: a
			// sow_delete over several topics journals one entry per
			// topic, all with the command's sequence.
			msg.Header.Set(jetstream.MsgIDHeader, publisherMsgID(e.ClientName, e.Sequence))
		}
	}
	j.sendMu.Lock()
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	// Microseconds, as broker.Entry says; never before the previous entry.
	e.Time = time.UnixMicro(max(e.Time.UnixMicro(), j.lastTime.UnixMicro()))
	msg.Data = appendEntry(make([]byte, 0, 64+len(e.Topic)+len(e.Body)), e)
	// No retries, as for the SOW order (sow.go): a retried append would be
	// stored after later ones of this journal, out of the callers' order.
	fut, err := j.js.PublishMsgAsync(msg, jetstream.WithExpectStream(j.cfg.Stream), jetstream.WithRetryAttempts(0))
	// The callbacks run in the order of the appends: each waits for the
	// one before it (turn), so a caller's outcomes come in its order.
	prev, turn := j.lastTurn, make(chan struct{})
	if err == nil {
		j.lastTime = e.Time
		j.lastTurn = turn
	}
	j.sendMu.Unlock()
	if err != nil {
		<-j.window
		j.inflight.Done()
		return fmt.Errorf("natscluster: journal %s: append to %q: %w", j.cfg.Stream, subject, err)
	}
	sequence := e.Sequence
	go func() {
		defer j.inflight.Done()
		defer close(turn)
		var pos broker.Position
		var err error
		select {
		case ack := <-fut.Ok():
			j.acks.Add(1)
			j.advance(ack.Sequence, client, sequence)
			pos = broker.Position(ack.Sequence)
		case ackErr := <-fut.Err():
			err = fmt.Errorf("natscluster: journal %s: append to %q not acknowledged: %w", j.cfg.Stream, subject, ackErr)
		}
		if prev != nil {
			<-prev
		}
		done(pos, err)
		// The slot is freed once the outcome was told, so that callers
		// that outrun their callbacks wait for room (the window bounds
		// both).
		<-j.window
	}()
	return nil
}

// Bounds implements broker.Journal. The next position is one above the
// highest this node knows stored; another node's append may take it.
func (j *Journal) Bounds() (first, next broker.Position) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.first, j.durable
}

// Durable implements broker.Journal.
func (j *Journal) Durable() broker.Position {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.durable
}

// DurableChanged implements broker.Journal.
func (j *Journal) DurableChanged() <-chan struct{} {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.changed
}

// Done implements broker.Journal.
func (j *Journal) Done() <-chan struct{} { return j.done }

// Err implements broker.Journal: always nil. JetStream's failures are per
// append (Append or AppendAsync's done reports each, and Durable never
// waits for an entry that failed), so the journal has no failed state: an
// append after a lost acknowledgement may well succeed.
func (j *Journal) Err() error { return nil }

// opContext bounds one operation by OperationTimeout and Close.
func (j *Journal) opContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(j.ctx, j.cfg.OperationTimeout)
}

// FindTime implements broker.Journal by binary search over the stream's
// sequences, reading each probed entry (one request per probe).
func (j *Journal) FindTime(t time.Time) (broker.Position, error) {
	j.mu.Lock()
	lo, hi, closed := j.first, j.durable, j.closed
	j.mu.Unlock()
	if closed {
		return 0, broker.ErrJournalClosed
	}
	ctx, cancel := j.opContext()
	defer cancel()
	// Invariant: every entry below lo is older than t; found is the first
	// entry at or above hi that is not older (hi's end value when none).
	found := hi
	for lo < hi {
		mid := lo + (hi-lo)/2
		e, err := j.get(ctx, uint64(mid))
		if errors.Is(err, jetstream.ErrMsgNotFound) || (err == nil && e.Position >= hi) {
			hi = mid // nothing stored in [mid, hi)
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("natscluster: journal %s: find time %v: %w", j.cfg.Stream, t, err)
		}
		if !e.Time.Before(t) {
			found, hi = e.Position, mid
		} else {
			lo = e.Position + 1
		}
	}
	return found, nil
}

// NewCursor implements broker.Journal. The cursor's consumer is created at
// its first read, so a cursor opened at the tail costs nothing until
// entries arrive.
func (j *Journal) NewCursor(from broker.Position) (broker.Cursor, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil, broker.ErrJournalClosed
	}
	if from < j.first || from > j.durable {
		return nil, fmt.Errorf("natscluster: journal %s: cursor at %d outside %d..%d: %w",
			j.cfg.Stream, from, j.first, j.durable, broker.ErrBookmarkNotFound)
	}
	c := &cursor{j: j, pos: from}
	c.ctx, c.cancel = context.WithCancel(j.ctx)
	j.cursors[c] = struct{}{}
	return c, nil
}

// Truncate implements broker.Journal: it purges the stream below before (no
// further than Durable or any open cursor of this node), after folding the
// marks of the entries it removes into the checkpoint.
func (j *Journal) Truncate(before broker.Position) (broker.Position, error) {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return 0, broker.ErrJournalClosed
	}
	before = min(before, j.durable)
	for c := range j.cursors {
		before = min(before, c.position())
	}
	first := j.first
	j.mu.Unlock()
	if before <= first {
		return first, nil
	}
	ctx, cancel := j.opContext()
	defer cancel()
	if err := j.foldCheckpoint(ctx, first, before); err != nil {
		return first, err
	}
	if err := j.stream.Purge(ctx, jetstream.WithPurgeSequence(uint64(before))); err != nil {
		return first, fmt.Errorf("natscluster: journal %s: purge below %d: %w", j.cfg.Stream, before, err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.first = max(j.first, before)
	return j.first, nil
}

// foldCheckpoint raises the checkpoint to cover every entry below before,
// reading the marks of the entries from max(first, its Through+1) on.
// Compare-and-set: another node's concurrent fold makes it read again.
func (j *Journal) foldCheckpoint(ctx context.Context, first, before broker.Position) error {
	for range casRetries {
		cp, rev, err := j.readCheckpoint(ctx)
		if err != nil {
			return err
		}
		if cp.Through+1 >= uint64(before) {
			return nil
		}
		from := max(first, broker.Position(cp.Through+1))
		if err := j.scan(ctx, from, before, func(_ uint64, h nats.Header) error {
			return addHighWater(cp.Marks, h)
		}); err != nil {
			return err
		}
		cp.Through = uint64(before) - 1
		data, err := json.Marshal(cp)
		if err != nil {
			return err
		}
		if rev == 0 {
			_, err = j.kv.Create(ctx, highWaterKey, data)
		} else {
			_, err = j.kv.Update(ctx, highWaterKey, data, rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !isWrongLastSequence(err) {
			return fmt.Errorf("natscluster: journal %s: write high-water checkpoint: %w", j.cfg.Stream, err)
		}
	}
	return fmt.Errorf("natscluster: journal %s: high-water checkpoint raced %d times", j.cfg.Stream, casRetries)
}

func isWrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// HighWaters implements broker.Journal.
func (j *Journal) HighWaters() map[string]uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return maps.Clone(j.high)
}

// Stats implements broker.Journal. Bytes and Entries come from the
// stream's state (one request, bounded by statsTimeout; the last figures
// when it fails); Segments is 1, the stream; Syncs counts the
// acknowledgements of this node's appends (each a replicated commit).
func (j *Journal) Stats() broker.JournalStats {
	var st *jetstream.StreamInfo
	if !j.isClosed() {
		ctx, cancel := context.WithTimeout(j.ctx, statsTimeout)
		st, _ = j.stream.Info(ctx)
		cancel()
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if st != nil {
		j.stats.Bytes, j.stats.Entries = int64(st.State.Bytes), int64(st.State.Msgs)
	}
	j.stats.Segments = 1
	j.stats.First, j.stats.Next, j.stats.Durable = j.first, j.durable, j.durable
	j.stats.Cursors = len(j.cursors)
	j.stats.Syncs = j.acks.Load()
	return j.stats
}

func (j *Journal) isClosed() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.closed
}

// Close implements broker.Journal: it refuses new appends, waits for those
// in flight to be acknowledged (or to time out), stops every cursor and
// the follower, then closes Done; a Close during or after that waits for
// it and returns nil. A consumer being made again (after a lost NATS
// node) is given up at once; the deletes of consumers given up are
// abandoned (the server drops them after a minute without pulls).
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		<-j.done
		return nil
	}
	j.closed = true
	j.cancel()
	cursors := make([]*cursor, 0, len(j.cursors))
	for c := range j.cursors {
		cursors = append(cursors, c)
	}
	j.mu.Unlock()
	for _, c := range cursors {
		c.stop()
	}
	<-j.followed
	j.inflight.Wait()
	j.deletes.Wait()
	j.mu.Lock()
	j.finished = true
	close(j.changed)
	j.changed = make(chan struct{})
	j.mu.Unlock()
	close(j.done)
	return nil
}
