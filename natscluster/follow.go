package natscluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// How a node reads a stream in order through a NATS node's loss (the SOW
// order, sowfollow.go; the journal's follower and cursors, journal.go and
// cursor.go): one ephemeral consumer at a time, made again at once from
// the sequence after the last one handled when it reports any trouble.
// nats.go's ordered consumer does the same but waits 1 s, 2 s, 4 s, … up
// to 10 s between tries and up to 10 s for each answer, which paused a
// reader for about 11 s when its consumer's server was the JetStream
// meta leader.
const (
	// followHeartbeat is the idle heartbeat of a consumer's pulls, the
	// smallest nats.go accepts: a consumer lost without a word (its server
	// gone abruptly) is noticed after two missed heartbeats. A server that
	// shuts down tells its consumers' pullers at once.
	followHeartbeat = 500 * time.Millisecond
	// followPullExpiry is how long one pull waits at the server (at least
	// twice the heartbeat).
	followPullExpiry = 5 * time.Second
	// followInactive is how long the server keeps a consumer nobody pulls
	// from: one a node gave up on whose delete did not reach the server,
	// or one made by a create request whose answer was lost.
	followInactive = time.Minute
	// resumeFirstWait and resumeMaxWait bound the wait before another
	// attempt at making a consumer, doubled after each attempt that failed
	// or made a consumer that failed before delivering anything; after a
	// consumer that worked the next is made at once.
	resumeFirstWait = 50 * time.Millisecond
	resumeMaxWait   = time.Second
	// resumeFirstTimeout bounds the first create request of a resume,
	// doubled per failed attempt up to the request timeout: a request that
	// went to a server on its way out is never answered (seen on the
	// JetStream meta leader's shutdown), and a short bound tries again
	// soon. A consumer a timed-out request made anyway is deleted.
	resumeFirstTimeout = 250 * time.Millisecond
	// leavingAvoid is how long a consumer placed on a server that
	// announced its shutdown is refused (deleted and made again): the
	// JetStream meta leader may place one there before it learns the
	// server left, and that consumer would go silent with it.
	leavingAvoid = 2 * time.Second
)

// errDeliveryGap reports a consumer that skipped one of its deliveries
// (the client dropped messages it could not take in time).
var errDeliveryGap = errors.New("natscluster: a stream consumer skipped a delivery")

// followSpec says which consumers a reader of a stream makes and who
// cleans up after them.
type followSpec struct {
	js             jetstream.JetStream
	stream         string
	filter         string // the subjects read
	headersOnly    bool
	buffer         int // deliveries waiting for the reader; also the pull batch when pullBatch
	pullBatch      bool
	requestTimeout time.Duration // the longest create request
	what           string        // names the reader in logs and errors
	log            *slog.Logger
	// life bounds the deletes of consumers given up on, which deletes
	// counts (their owner waits for it when it closes).
	life    context.Context
	deletes *sync.WaitGroup
}

// streamConsumer is one consumer of a stream: Consume's callbacks hand its
// messages (msgs) and its first trouble (lost) to the reader; closing stop
// releases a callback that waits. delivered is the consumer sequence of
// the last message the reader took (next's, the reader's alone).
type streamConsumer struct {
	name      string
	host      string // the server it lives on, if the server said
	cc        jetstream.ConsumeContext
	msgs      chan jetstream.Msg
	lost      chan error
	stop      chan struct{}
	made      time.Time
	delivered uint64
}

// create makes consumer name delivering the stream from sequence from,
// waiting at most timeout for the server's answer.
func (s *followSpec) create(ctx context.Context, name string, from uint64, timeout time.Duration) (*streamConsumer, error) {
	c := &streamConsumer{
		name: name,
		msgs: make(chan jetstream.Msg, s.buffer), lost: make(chan error, 1), stop: make(chan struct{}),
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cons, err := s.js.CreateConsumer(cctx, s.stream, jetstream.ConsumerConfig{
		Name: c.name, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from,
		AckPolicy: jetstream.AckNonePolicy, FilterSubject: s.filter, HeadersOnly: s.headersOnly,
		Replicas: 1, MemoryStorage: true, InactiveThreshold: followInactive,
	})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			s.delete(c.name)
		}
		return nil, fmt.Errorf("natscluster: %s consumer %s on %s from sequence %d: %w", s.what, c.name, s.stream, from, err)
	}
	opts := []jetstream.PullConsumeOpt{
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			select {
			case c.lost <- err:
			default:
			}
		}),
		jetstream.PullHeartbeat(followHeartbeat), jetstream.PullExpiry(followPullExpiry),
	}
	if s.pullBatch {
		opts = append(opts, jetstream.PullMaxMessages(s.buffer))
	}
	c.cc, err = cons.Consume(func(m jetstream.Msg) {
		select {
		case c.msgs <- m:
		case <-c.stop:
		}
	}, opts...)
	if err != nil {
		s.delete(c.name)
		return nil, fmt.Errorf("natscluster: %s consumer %s on %s: %w", s.what, c.name, s.stream, err)
	}
	if ci := cons.CachedInfo(); ci != nil && ci.Cluster != nil {
		c.host = ci.Cluster.Leader
	}
	c.made = time.Now()
	return c, nil
}

// end stops c's deliveries and releases a callback waiting to hand one
// over.
func (c *streamConsumer) end() {
	close(c.stop)
	c.cc.Stop()
}

// next returns c's next message and its metadata, or the trouble c
// reported (any error of its pulls: a missed heartbeat, no responders, its
// server shutting down, the consumer deleted), a skipped delivery
// (errDeliveryGap), or ctx's end.
func (c *streamConsumer) next(ctx context.Context) (jetstream.Msg, *jetstream.MsgMetadata, error) {
	return c.nextOr(ctx, nil)
}

// nextOr is next, or returns nothing (no message, no error) when wake
// fires first (nil: never).
func (c *streamConsumer) nextOr(ctx context.Context, wake <-chan struct{}) (jetstream.Msg, *jetstream.MsgMetadata, error) {
	select {
	case <-wake:
		return nil, nil, nil
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	case err := <-c.lost:
		return nil, nil, err
	case m := <-c.msgs:
		meta, err := m.Metadata()
		if err != nil {
			return nil, nil, fmt.Errorf("natscluster: message on %s of consumer %s without metadata: %w", m.Subject(), c.name, err)
		}
		if meta.Sequence.Consumer != c.delivered+1 {
			return nil, nil, fmt.Errorf("%w: %s delivered %d after %d", errDeliveryGap, c.name, meta.Sequence.Consumer, c.delivered)
		}
		c.delivered = meta.Sequence.Consumer
		return m, meta, nil
	}
}

// delete asks the server, from a goroutine counted in deletes, to delete a
// consumer no longer read (best effort: one the server does not hear of
// goes after followInactive, or when its server comes back).
func (s *followSpec) delete(name string) {
	s.deletes.Add(1)
	go func() {
		defer s.deletes.Done()
		ctx, cancel := context.WithTimeout(s.life, s.requestTimeout)
		defer cancel()
		if err := s.js.DeleteConsumer(ctx, s.stream, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			s.log.Debug("stream consumer delete", "reader", s.what, "consumer", name, "err", err)
		}
	}()
}

// resumer makes one reader's consumers, one after another: each from the
// sequence from returns, named by name. Its state (the waits and bounds of
// the next attempt, a server seen leaving) is its reader's alone.
type resumer struct {
	spec *followSpec
	name func() string
	from func() uint64

	wait         time.Duration // before the next attempt
	timeout      time.Duration // of the next create request; 0 for resumeFirstTimeout
	lostAt       time.Time     // when the last consumer that worked failed
	leaving      string        // a server that announced its shutdown
	leavingUntil time.Time
}

// open makes a consumer, trying again (see the constants above) until one
// is made on a server not seen leaving or ctx ends.
func (r *resumer) open(ctx context.Context) (*streamConsumer, error) {
	if r.timeout == 0 {
		r.timeout = resumeFirstTimeout
	}
	for {
		if r.wait > 0 {
			t := time.NewTimer(r.wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
		from := r.from()
		c, err := r.spec.create(ctx, r.name(), from, r.timeout)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			r.spec.log.Debug("stream consumer not made; trying again", "reader", r.spec.what, "err", err, "wait", r.wait)
			r.wait, r.timeout = longerWait(r.wait), min(2*r.timeout, r.spec.requestTimeout)
			continue
		}
		r.timeout = resumeFirstTimeout
		if c.host != "" && c.host == r.leaving && time.Now().Before(r.leavingUntil) {
			r.spec.log.Debug("stream consumer placed on a server shutting down; making another",
				"reader", r.spec.what, "consumer", c.name, "server", c.host)
			c.end()
			r.spec.delete(c.name)
			r.wait = longerWait(r.wait)
			continue
		}
		if !r.lostAt.IsZero() {
			r.spec.log.Info("stream consumer made again", "reader", r.spec.what, "consumer", c.name, "from", from, "after", time.Since(r.lostAt))
			r.lostAt = time.Time{}
		}
		return c, nil
	}
}

// lost gives up c, which reported err (c already ended): it deletes c and
// sets the wait before the next attempt, none after a consumer that
// worked.
func (r *resumer) lost(c *streamConsumer, err error) {
	r.spec.delete(c.name)
	if errors.Is(err, jetstream.ErrServerShutdown) {
		r.leaving, r.leavingUntil = c.host, time.Now().Add(leavingAvoid)
	}
	if c.delivered > 0 || time.Since(c.made) >= resumeMaxWait {
		r.wait = 0
		r.lostAt = time.Now()
	} else {
		r.wait = longerWait(r.wait)
	}
	r.spec.log.Debug("stream consumer lost; making another", "reader", r.spec.what, "consumer", c.name, "err", err, "from", r.from())
}

// longerWait is the wait after one more failed attempt.
func longerWait(wait time.Duration) time.Duration {
	if wait == 0 {
		return resumeFirstWait
	}
	return min(2*wait, resumeMaxWait)
}
