package natscluster

import (
	"cmp"
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Nodes started together on a new NATS cluster all find a stream (or
// bucket) missing and ask to create it at once. Such a request can go
// unanswered for as long as its context allows while the meta leader
// settles the race, or be refused for a moment (the name in use, no
// servers to place it on yet, a server that has not yet learnt of the
// stream another node just made), so each look-up and create gets a short
// attempt of its own, and the node looks again until it finds what
// another node made, or until its context (at most ensureLimit without a
// deadline) ends. A lasting refusal (a replication factor the cluster
// cannot have, subjects another stream takes) is returned at once.
const (
	// createAttempt bounds one look-up or create request.
	createAttempt = 2 * time.Second
	// createPause separates two attempts.
	createPause = 100 * time.Millisecond
	// ensureLimit bounds the attempts when the caller's context has no
	// deadline.
	ensureLimit = 30 * time.Second
)

// JetStream error codes of a moment's refusal while nodes race to create
// a stream or the cluster forms.
const (
	jsErrNoSuitablePeers jetstream.ErrorCode = 10005 // not enough servers online yet
	jsErrClusterNotAvail jetstream.ErrorCode = 10008 // "temporarily unavailable"
	jsErrClusterNoLeader jetstream.ErrorCode = 10009 // "can not handle request"
	jsErrStreamNameInUse jetstream.ErrorCode = 10058 // another node's create won (its config differs, e.g. a first sequence a second later)
	jsErrStreamNotFound  jetstream.ErrorCode = 10059 // a server not yet told of it
)

// transient reports whether err may go away by itself (see above).
func transient(err, notFound error) bool {
	var api *jetstream.APIError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, jetstream.ErrStreamNameAlreadyInUse), errors.Is(err, jetstream.ErrNoStreamResponse),
		notFound != nil && errors.Is(err, notFound):
		return true
	case errors.As(err, &api):
		switch api.ErrorCode {
		case jsErrNoSuitablePeers, jsErrClusterNotAvail, jsErrStreamNameInUse, jsErrStreamNotFound, jsErrClusterNoLeader:
			return true
		}
	}
	return false
}

// ensure returns what lookup finds, creating it with create when it is
// missing (notFound tells lookup's "missing" error; a nil create only
// looks), trying again with short attempts while the failure is a
// moment's (see above) and ctx lasts. It returns the last error that was
// not a timeout, if any, else the last one.
func ensure[T any](ctx context.Context, lookup, create func(context.Context) (T, error), notFound error) (T, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, ensureLimit)
		defer cancel()
	}
	var v T
	var telling error // the last failure that says more than a timeout
	err := retrying(ctx, createAttempt, createPause, func(err error) bool { return transient(err, notFound) },
		func(actx context.Context) (err error) {
			if v, err = lookup(actx); create != nil && errors.Is(err, notFound) {
				// A create of its own attempt: the look-up may have used
				// most of this one.
				cctx, cancel := context.WithTimeout(ctx, createAttempt)
				defer cancel()
				v, err = create(cctx)
			}
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				telling = err
			}
			return err
		})
	if err != nil {
		return v, cmp.Or(telling, err)
	}
	return v, nil
}

// retrying calls fn, each call bounded by attempt, again after pause
// while the call fails with an error again says is a moment's and ctx
// lasts. It returns nil or the last failure.
func retrying(ctx context.Context, attempt, pause time.Duration, again func(error) bool, fn func(context.Context) error) error {
	for {
		actx, cancel := context.WithTimeout(ctx, attempt)
		err := fn(actx)
		cancel()
		if err == nil || !again(err) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
	}
}
