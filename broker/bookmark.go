package broker

import (
	"regexp"
	"strings"

	"github.com/ampsbroker/ampsbroker/protocol"
)

// Bookmarks without a transaction log. A bookmark subscription asks for a
// replay of the journal from a point, then live messages. This broker has
// no journal yet; clients that resubscribe after a reconnect routinely send
// a bookmark (the JavaScript client sends "0" for "recent" without a
// bookmark store), so by default such a subscription is entered live, with
// no replay, as AMPS's subscribe reference describes for topics that are
// not journaled (semantics §7.3; the replay chapter says an error instead:
// Options.BookmarkFallback chooses). bookmarkReason is the one place that
// decides; a journal's replay will start behind it.

// BookmarkFallback is what a subscription with a bookmark gets from a
// broker without a transaction log.
type BookmarkFallback uint8

const (
	// BookmarkLive, the default, enters the subscription live: no replay,
	// no "bm" on deliveries, a "completed" ack (if asked for) right after
	// "processed".
	BookmarkLive BookmarkFallback = iota
	// BookmarkFail refuses every bookmark subscription with
	// ReasonInvalidBookmark.
	BookmarkFail
)

// Reasons of refused bookmark subscriptions.
const (
	ReasonInvalidBookmark = "invalid bookmark"
	ReasonBookmarkNotSupp = "bookmark replay is not supported: no transaction log"
)

// bookmarkKind is the form of a subscription's bookmark (wire spec §8.7).
type bookmarkKind uint8

const (
	bmNone      bookmarkKind = iota
	bmEpoch                  // "0": the whole journal
	bmNow                    // "0|1|": from now on
	bmBookmark               // "<publisher>|<sequence>|": after that message
	bmList                   // several bookmarks: from the earliest
	bmTimestamp              // YYYYMMDDThhmmss[.f][Z]: from that moment
	bmRange                  // [a:b), (a:b] ...: a bounded replay
	bmInvalid
)

var (
	bookmarkRE  = regexp.MustCompile(`^[0-9]+\|[0-9]+\|$`)
	timestampRE = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}(\.[0-9]{1,9})?Z?$`)
)

// classifyBookmark tells the form of bm.
func classifyBookmark(bm string) bookmarkKind {
	switch {
	case bm == "":
		return bmNone
	case bm == "0":
		return bmEpoch
	case bm == "0|1|":
		return bmNow
	case strings.HasPrefix(bm, "[") || strings.HasPrefix(bm, "("):
		return bmRange
	case bookmarkRE.MatchString(bm):
		return bmBookmark
	case timestampRE.MatchString(bm):
		return bmTimestamp
	case strings.Contains(bm, ","):
		for _, b := range strings.Split(bm, ",") {
			if k := classifyBookmark(strings.TrimSpace(b)); k == bmInvalid || k == bmRange || k == bmNone {
				return bmInvalid
			}
		}
		return bmList
	}
	return bmInvalid
}

// bookmarkReason decides what a subscribing command with a bookmark gets:
// "" to enter it live, else the failure reason. opts are its options.
func (b *Broker) bookmarkReason(h *protocol.Header, opts []string) string {
	kind := classifyBookmark(h.Bookmark)
	switch {
	case kind == bmNone:
		return ""
	case kind == bmInvalid:
		return ReasonInvalidBookmark
	case h.Command == protocol.CmdDeltaSubscribe || h.Command == protocol.CmdSOWAndDeltaSub:
		// AMPS refuses bookmark delta subscriptions.
		return ReasonBookmarkNotSupp
	case h.Command == protocol.CmdSOWAndSubscribe:
		// NOW is the only bookmark a sow_and_subscribe may carry on a
		// topic without History, which every topic is here.
		if kind == bmNow {
			return ""
		}
		return ReasonBookmarkNotSupp
	case kind == bmRange:
		// A bounded replay has nothing to replay and nowhere to stop.
		return ReasonBookmarkNotSupp
	case b.opts.BookmarkFallback == BookmarkFail:
		return ReasonInvalidBookmark
	case (kind == bmBookmark || kind == bmList) && optionValue(opts, "bookmark_not_found") == "fail":
		// The subscriber asked to fail when its bookmark cannot be
		// found, and with no journal nothing can be.
		return ReasonInvalidBookmark
	}
	return ""
}

// optionValue returns the value of option name in opts ("" when absent
// or without a value).
func optionValue(opts []string, name string) string {
	for _, o := range opts {
		n, v, _ := strings.Cut(o, "=")
		if strings.TrimSpace(n) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
