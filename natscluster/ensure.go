package natscluster

import (
	"context"
	"errors"
	"time"
)

// Nodes started together on a new NATS cluster all find a stream (or
// bucket) missing and ask to create it at once. Such a request can go
// unanswered for as long as its context allows while the meta leader
// settles the race, so each look-up and create gets a short attempt of its
// own, and the node looks again until it finds what another node made, or
// until its context ends.
const (
	// createAttempt bounds one look-up or create request.
	createAttempt = 2 * time.Second
	// createPause separates two attempts.
	createPause = 100 * time.Millisecond
)

// ensure returns what lookup finds, creating it with create when it is
// missing (notFound tells lookup's "missing" error; a nil create only
// looks, as a server that has not yet learnt of a stream another node just
// made says "not found" for a moment), trying again with short attempts
// until ctx ends; it returns the last error then.
func ensure[T any](ctx context.Context, lookup, create func(context.Context) (T, error), notFound error) (T, error) {
	attempt := func(f func(context.Context) (T, error)) (T, error) {
		actx, cancel := context.WithTimeout(ctx, createAttempt)
		defer cancel()
		return f(actx)
	}
	for {
		v, err := attempt(lookup)
		if create != nil && errors.Is(err, notFound) {
			if v, err = attempt(create); err == nil {
				return v, nil
			}
		}
		if err == nil {
			return v, nil
		}
		// Whatever failed (an unanswered request, "already in use" from a
		// create that lost the race, a leader election) is tried again;
		// a lasting refusal is returned when ctx ends.
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(createPause):
		}
	}
}
