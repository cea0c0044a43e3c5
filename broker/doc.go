// Package broker routes AMPS messages. A Broker owns sessions (one per
// network connection), the topic routers and in-process clients; it has no
// package-level state, so a program or a test may run as many as it likes.
//
// A host creates one with New (the zero Options work), hands it listeners
// with Serve, or connections with ServeConn, and stops it with Shutdown,
// which stops accepting, flushes what each connection has queued, closes
// the connections and waits for every goroutine the broker runs:
//
//	b := broker.New(nil)
//	l, _ := listener.ListenTCP(":9007", nil)
//	go b.Serve(l)
//	...
//	b.Shutdown(ctx)
//
// Each session reads commands in order on the goroutine that serves it and
// writes through a goroutine of its own from a bounded queue, coalescing
// queued messages into one flush. A publish finds its subscribers through a
// per-message-type router (an exact-topic map plus regex subscriptions
// matched once per distinct topic), encodes the delivery once, and queues
// it on every receiving connection without blocking: a connection that does
// not keep up is disconnected as a slow consumer instead of slowing anyone
// else.
//
// A subscription may carry a content filter (package filter), compiled once
// at subscribe. The router keeps, per topic, one extractor over the union
// of the fields its subscriptions' filters name: a publish is scanned once
// for them, and each filter evaluates over the values found.
//
// Every endpoint, a network session or an in-process client, ends
// through one close path that takes its cause; the cause is one of the
// exported Err… values (ErrSlowConsumer, ErrHeartbeatTimeout, …), reported
// by ConnEvent.Err, ServeConn and Client.Err, and it decides whether what
// is queued is flushed first, dropped, or the connection reset.
//
// The broker reaches transports only through package transport's
// interfaces, so it imports none of them; package listener has TCP, TLS,
// Unix sockets and WebSocket.
//
// Go code takes part without a socket through Connect, which returns an
// in-process Client using the same router and topic rules.
//
// Security is two hooks: an Authenticator for logons and an Entitler for
// topics, per broker and per transport (Options.Transports); UserTable and
// TopicPrefixTable are ready-made implementations. Stats, StatsHandler and
// Options.ConnState let a host export metrics with its own library.
package broker
