package natscluster

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/nats-io/nats.go/jetstream"
)

// Deduplication. A JetStream publish whose acknowledgement is lost (a
// timeout while a stream elects a leader, a connection that drops) is
// reported failed, yet the stream may have stored it. Neither the SOW
// order nor the journal retries it (a retry would land behind later
// publishes, see Order); the publisher's publish store resends it instead,
// perhaps through another node. To store such a resend once, a publish
// that carries its publisher's identity (client name and sequence "s")
// carries a Nats-Msg-Id made of them, and JetStream drops a message whose
// id it saw within the stream's duplicate window, acknowledging it with
// Duplicate set and the sequence of the message it stored first. Such an
// acknowledgement is a success: the message is in the stream.
//
// The window bounds what is caught: a resend later than it (the publisher
// was away longer) is stored again. JetStream keeps every id of the window
// in memory on each replica, so the window costs memory in proportion to
// the publish rate times its length.

// DefaultDuplicateWindow is the duplicate window of the SOW stream and the
// journal's stream: JetStream's own default, long enough for a publisher
// to notice a failed ack, reconnect (to another node) and resend.
const DefaultDuplicateWindow = 2 * time.Minute

// publisherMsgID is the Nats-Msg-Id of a publish by client with sequence
// seq: the sequence and the client name as a token (EncodeToken), so any
// name fits a header value. The leading kind tells it from the SOW order's
// other ids (see expireMsgID).
func publisherMsgID(client string, seq uint64) string {
	return "p " + highWaterValue(client, seq)
}

// expireMsgID is the Nats-Msg-Id of an expire request (see
// broker.RemotePublish.Expire): every node's janitor asks to expire the
// same record version at about the same time, and the stream keeps the
// first request. The version alone names one write of the stream; the
// message type, topic and key (as tokens) are there to read.
func expireMsgID(mt, topic, key string, version uint64) string {
	return "x " + strconv.FormatUint(version, 10) + " " + EncodeToken(mt) + " " + EncodeToken(topic) + " " + EncodeToken(key)
}

// orderedMsgID is the Nats-Msg-Id of an ordered publish, "" for one that
// nothing identifies across resends (no publisher sequence).
func orderedMsgID(rp *broker.RemotePublish) string {
	switch {
	case rp.Expire:
		return expireMsgID(rp.MessageType, rp.Topic, rp.SOWKey, rp.ExpireVersion)
	case rp.ClientName != "" && rp.Sequence != 0:
		return publisherMsgID(rp.ClientName, rp.Sequence)
	}
	return ""
}

// ensureDuplicateWindow makes the duplicate window of stream s (whose
// configuration was read when it was looked up) want. A stream keeps the
// configuration it was created with, so a stream made before the window
// was configured (or with another) is updated; a failure is logged and the
// stream's window kept, as deduplication then catches less but nothing
// else changes.
func ensureDuplicateWindow(ctx context.Context, js jetstream.JetStream, s jetstream.Stream, want time.Duration, log *slog.Logger) {
	cfg := s.CachedInfo().Config
	if cfg.Duplicates == want {
		return
	}
	had := cfg.Duplicates
	cfg.Duplicates = want
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		log.Warn("could not set the stream's duplicate window; keeping the stream's", "stream", cfg.Name, "window", had, "configured", want, "err", err)
		return
	}
	log.Info("stream's duplicate window set", "stream", cfg.Name, "was", had, "window", want)
}
