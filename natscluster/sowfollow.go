package natscluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/nats-io/nats.go/jetstream"
)

// How a node follows the SOW stream (see "Losing a NATS node"): one
// ephemeral consumer at a time, made again at once from the sequence after
// the last one applied when it reports any trouble.
const (
	// sowPullHeartbeat is the idle heartbeat of the SOW consumer's pulls,
	// the smallest nats.go accepts: a consumer lost without a word (its
	// server gone abruptly) is noticed after two missed heartbeats. A
	// server that shuts down tells its consumers' pullers at once.
	sowPullHeartbeat = 500 * time.Millisecond
	// sowPullExpiry is how long one pull waits at the server (at least
	// twice the heartbeat).
	sowPullExpiry = 5 * time.Second
	// sowConsumerInactive is how long the server keeps a SOW consumer
	// nobody pulls from: one this node gave up on whose delete did not
	// reach the server, or one made by a create request whose answer was
	// lost.
	sowConsumerInactive = time.Minute
	// resumeFirstWait and resumeMaxWait bound the wait before another
	// attempt at making the consumer, doubled after each attempt that
	// failed or made a consumer that failed before delivering anything;
	// after a consumer that worked the next is made at once.
	resumeFirstWait = 50 * time.Millisecond
	resumeMaxWait   = time.Second
	// resumeFirstTimeout bounds the first create request of a resume,
	// doubled per failed attempt up to RequestTimeout: a request that
	// went to a server on its way out is never answered (seen on the
	// JetStream meta leader's shutdown), and a short bound tries again
	// soon. A consumer a timed-out request made anyway is deleted.
	resumeFirstTimeout = 250 * time.Millisecond
	// leavingAvoid is how long a consumer placed on a server that
	// announced its shutdown is refused (deleted and made again): the
	// JetStream meta leader may place one there before it learns the
	// server left, and that consumer would go silent with it.
	leavingAvoid = 2 * time.Second
	// sowConsumerBuffer is how many delivered messages wait for the
	// applying goroutine.
	sowConsumerBuffer = 256
)

// sowConsumer is one consumer of the SOW stream: Consume's callbacks hand
// its messages (msgs) and its first trouble (lost) to the follow
// goroutine; closing stop releases a callback that waits.
type sowConsumer struct {
	name string
	host string // the server it lives on, if the server said
	cc   jetstream.ConsumeContext
	msgs chan jetstream.Msg
	lost chan error
	stop chan struct{}
	made time.Time
}

// newSOWConsumer makes a consumer that delivers the stream from the
// sequence after the last one applied, waiting at most timeout for the
// server's answer.
func (o *OrderedBackplane) newSOWConsumer(ctx context.Context, timeout time.Duration) (*sowConsumer, error) {
	o.serial++
	c := &sowConsumer{
		name: fmt.Sprintf("amps_sow_%s_%d", o.instance, o.serial),
		msgs: make(chan jetstream.Msg, sowConsumerBuffer), lost: make(chan error, 1), stop: make(chan struct{}),
	}
	from := o.applied.Load() + 1
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cons, err := o.js.CreateConsumer(cctx, o.cfg.Stream, jetstream.ConsumerConfig{
		Name: c.name, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from,
		AckPolicy: jetstream.AckNonePolicy, FilterSubject: o.subjects.All(),
		Replicas: 1, MemoryStorage: true, InactiveThreshold: sowConsumerInactive,
	})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			o.deleteSOWConsumer(c.name)
		}
		return nil, fmt.Errorf("natscluster: SOW consumer %s on %s from sequence %d: %w", c.name, o.cfg.Stream, from, err)
	}
	c.cc, err = cons.Consume(func(m jetstream.Msg) {
		select {
		case c.msgs <- m:
		case <-c.stop:
		}
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		select {
		case c.lost <- err:
		default:
		}
	}), jetstream.PullHeartbeat(sowPullHeartbeat), jetstream.PullExpiry(sowPullExpiry))
	if err != nil {
		o.deleteSOWConsumer(c.name)
		return nil, fmt.Errorf("natscluster: SOW consumer %s on %s: %w", c.name, o.cfg.Stream, err)
	}
	if ci := cons.CachedInfo(); ci != nil && ci.Cluster != nil {
		c.host = ci.Cluster.Leader
	}
	c.made = time.Now()
	return c, nil
}

// end stops c's deliveries and releases a callback waiting to hand one
// over.
func (c *sowConsumer) end() {
	close(c.stop)
	c.cc.Stop()
}

// deleteSOWConsumer asks the server, from a goroutine Close waits for, to
// delete a consumer this node no longer reads (best effort: one the server
// does not hear of goes after sowConsumerInactive, or when its server
// comes back).
func (o *OrderedBackplane) deleteSOWConsumer(name string) {
	o.deletes.Add(1)
	go func() {
		defer o.deletes.Done()
		ctx, cancel := context.WithTimeout(o.followCtx, o.cfg.RequestTimeout)
		defer cancel()
		if err := o.js.DeleteConsumer(ctx, o.cfg.Stream, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			o.log.Debug("SOW consumer delete", "consumer", name, "err", err)
		}
	}()
}

// follow applies the SOW stream from first (a consumer StartOrdered made)
// on, one consumer after another, until Close; it closes followed when it
// returns. Each message is applied once and in stream order: a consumer
// starts after the last sequence applied, a message at or below it is
// skipped, and a consumer that skips one of its deliveries is replaced.
func (o *OrderedBackplane) follow(first *sowConsumer, apply func(*broker.RemotePublish)) {
	defer close(o.followed)
	ctx := o.followCtx
	c := first
	var wait time.Duration // before the next attempt
	timeout := resumeFirstTimeout
	var lostAt time.Time // when the last consumer that worked failed
	var leaving string   // a server that announced its shutdown
	var leavingUntil time.Time
	for {
		if c == nil {
			if wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
			}
			var err error
			if c, err = o.newSOWConsumer(ctx, timeout); err != nil {
				if ctx.Err() != nil {
					return
				}
				o.log.Debug("SOW order consumer not made; trying again", "err", err, "wait", wait)
				wait, timeout = longerWait(wait), min(2*timeout, o.cfg.RequestTimeout)
				continue
			}
			timeout = resumeFirstTimeout
			if c.host != "" && c.host == leaving && time.Now().Before(leavingUntil) {
				o.log.Debug("SOW order consumer placed on a server shutting down; making another", "consumer", c.name, "server", c.host)
				c.end()
				o.deleteSOWConsumer(c.name)
				c, wait = nil, longerWait(wait)
				continue
			}
			if !lostAt.IsZero() {
				o.log.Info("SOW order consumer made again", "consumer", c.name, "from", o.applied.Load()+1, "after", time.Since(lostAt))
				lostAt = time.Time{}
			}
		}
		delivered, err := o.read(ctx, c, apply)
		c.end()
		if ctx.Err() != nil {
			return
		}
		o.deleteSOWConsumer(c.name)
		if errors.Is(err, jetstream.ErrServerShutdown) {
			leaving, leavingUntil = c.host, time.Now().Add(leavingAvoid)
		}
		if delivered > 0 || time.Since(c.made) >= resumeMaxWait {
			wait = 0
			lostAt = time.Now()
		} else {
			wait = longerWait(wait)
		}
		o.log.Debug("SOW order consumer lost; making another", "consumer", c.name, "err", err, "from", o.applied.Load()+1)
		c = nil
	}
}

// longerWait is the wait after one more failed attempt.
func longerWait(wait time.Duration) time.Duration {
	if wait == 0 {
		return resumeFirstWait
	}
	return min(2*wait, resumeMaxWait)
}

// errDeliveryGap reports a consumer that skipped one of its deliveries
// (the client dropped messages it could not take in time).
var errDeliveryGap = errors.New("natscluster: the SOW consumer skipped a delivery")

// read applies what c delivers until c reports trouble (any error of its
// pulls: a missed heartbeat, no responders, its server shutting down, the
// consumer deleted), skips a delivery, or ctx ends; it returns how many
// messages c delivered.
func (o *OrderedBackplane) read(ctx context.Context, c *sowConsumer, apply func(*broker.RemotePublish)) (uint64, error) {
	var delivered uint64 // c's sequence of the last message it delivered
	for {
		select {
		case <-ctx.Done():
			return delivered, ctx.Err()
		case err := <-c.lost:
			return delivered, err
		case m := <-c.msgs:
			meta, err := m.Metadata()
			if err != nil {
				return delivered, fmt.Errorf("natscluster: SOW message on %s without metadata: %w", m.Subject(), err)
			}
			if meta.Sequence.Consumer != delivered+1 {
				return delivered, fmt.Errorf("%w: %d after %d", errDeliveryGap, meta.Sequence.Consumer, delivered)
			}
			delivered = meta.Sequence.Consumer
			if meta.Sequence.Stream > o.applied.Load() {
				o.receiveOrdered(m, meta, apply)
			}
		}
	}
}
