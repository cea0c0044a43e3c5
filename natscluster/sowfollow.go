package natscluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
)

// sowConsumerBuffer is how many delivered SOW messages wait for the
// applying goroutine.
const sowConsumerBuffer = 256

// sowFollowSpec is the SOW order's consumers (follow.go): every subject of
// the stream, deleted from followCtx, counted in deletes.
func (o *OrderedBackplane) sowFollowSpec() *followSpec {
	return &followSpec{
		js: o.js, stream: o.cfg.Stream, filter: o.subjects.All(), buffer: sowConsumerBuffer,
		requestTimeout: o.cfg.RequestTimeout, what: "SOW order", log: o.log,
		life: o.followCtx, deletes: &o.deletes,
	}
}

// sowConsumerName names the node's next SOW consumer.
func (o *OrderedBackplane) sowConsumerName() string {
	o.serial++
	return fmt.Sprintf("amps_sow_%s_%d", o.instance, o.serial)
}

// newSOWConsumer makes a consumer that delivers the stream from the
// sequence after the last one applied, waiting at most timeout for the
// server's answer.
func (o *OrderedBackplane) newSOWConsumer(ctx context.Context, timeout time.Duration) (*streamConsumer, error) {
	return o.sowFollowSpec().create(ctx, o.sowConsumerName(), o.applied.Load()+1, timeout)
}

// follow applies the SOW stream from first (a consumer StartOrdered made)
// on, one consumer after another (follow.go's resumer), until Close; it
// closes followed when it returns. Each message is applied once and in
// stream order: a consumer starts after the last sequence applied, a
// message at or below it is skipped, and a consumer that skips one of its
// deliveries is replaced.
func (o *OrderedBackplane) follow(first *streamConsumer, apply func(*broker.RemotePublish)) {
	defer close(o.followed)
	ctx := o.followCtx
	r := &resumer{spec: o.sowFollowSpec(), name: o.sowConsumerName, from: func() uint64 { return o.applied.Load() + 1 }}
	c := first
	for {
		if c == nil {
			var err error
			if c, err = r.open(ctx); err != nil {
				return // only when ctx ends
			}
		}
		err := o.read(ctx, c, apply)
		c.end()
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrSOWGap) {
			r.spec.delete(c.name)
			return // until a restart (see "A gap" in snapshot.go)
		}
		r.lost(c, err)
		c = nil
	}
}

// read applies what c delivers until c reports trouble, skips a delivery,
// skips a stream sequence (a gap, ErrSOWGap: see snapshot.go), or ctx
// ends. Between applies it answers the snapshot goroutine's requests.
func (o *OrderedBackplane) read(ctx context.Context, c *streamConsumer, apply func(*broker.RemotePublish)) error {
	for {
		if o.gapped.Load() { // found by the lag poll (idleGap)
			return ErrSOWGap
		}
		o.idleSince.Store(time.Now().UnixNano())
		m, meta, err := c.nextOr(ctx, o.snapWake)
		o.idleSince.Store(0)
		if err != nil {
			return err
		}
		if m == nil {
			o.answerSnapshot()
			continue
		}
		applied := o.applied.Load()
		switch seq := meta.Sequence.Stream; {
		case seq > applied+1:
			return o.reportGap(applied, seq)
		case seq > applied:
			o.receiveOrdered(m, meta, apply)
		}
	}
}
