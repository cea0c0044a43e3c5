package broker

import (
	"fmt"
	"regexp"
	"strings"
	"time"

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
// "" to enter it (replayed from the journal when replay is set, else
// live), else the failure reason. opts are its options.
func (b *Broker) bookmarkReason(h *protocol.Header, opts []string, replay bool) string {
	kind := classifyBookmark(h.Bookmark)
	switch {
	case kind == bmNone:
		return ""
	case kind == bmInvalid:
		return ReasonInvalidBookmark
	case replay:
		return "" // startReplay resolves it
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

// Bookmark values with a journal (replay spec §7.3). A subscription's "bm"
// is one point, a comma list of points, or a range of two such lists:
//
//	bm    = "0" | "0|1|" | points | range
//	point = <id>|<seq>| | YYYYMMDDThhmmss[.ffffff][Z] | "0" | "0|1|"
//	range = ("[" | "(") points ":" points ("]" | ")")
//
// Spaces around list items are ignored; timestamps are UTC.

// bmPoint is one point of a bookmark value.
type bmPoint struct {
	kind bookmarkKind // bmEpoch, bmNow, bmBookmark or bmTimestamp
	text string       // the point as sent
	t    time.Time    // a timestamp's instant
}

// bookmarkSpec is a parsed bookmark value.
type bookmarkSpec struct {
	start   []bmPoint
	isRange bool
	// With a range: startExcl for "(", endIncl for "]", and the end list.
	startExcl, endIncl bool
	end                []bmPoint
}

// parseBookmarkSpec parses a subscription's non-empty "bm". The error says
// what is malformed.
func parseBookmarkSpec(bm string) (bookmarkSpec, error) {
	var spec bookmarkSpec
	bm = strings.TrimSpace(bm)
	if strings.HasPrefix(bm, "[") || strings.HasPrefix(bm, "(") {
		last := bm[len(bm)-1]
		if len(bm) < 2 || (last != ']' && last != ')') {
			return spec, fmt.Errorf("range %q does not end with ] or )", bm)
		}
		from, to, ok := strings.Cut(bm[1:len(bm)-1], ":")
		if !ok {
			return spec, fmt.Errorf("range %q has no ':' between its start and end", bm)
		}
		spec.isRange, spec.startExcl, spec.endIncl = true, bm[0] == '(', last == ']'
		var err error
		if spec.start, err = parsePoints(from); err != nil {
			return spec, fmt.Errorf("start of range %q: %w", bm, err)
		}
		if spec.end, err = parsePoints(to); err != nil {
			return spec, fmt.Errorf("end of range %q: %w", bm, err)
		}
		return spec, nil
	}
	var err error
	spec.start, err = parsePoints(bm)
	return spec, err
}

// parsePoints parses a comma list of points.
func parsePoints(list string) ([]bmPoint, error) {
	var out []bmPoint
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		p := bmPoint{kind: classifyBookmark(item), text: item}
		switch p.kind {
		case bmEpoch, bmNow, bmBookmark:
		case bmTimestamp:
			t, err := parseBookmarkTime(item)
			if err != nil {
				return nil, err
			}
			p.t = t
		default:
			return nil, fmt.Errorf("%q is not a bookmark, a timestamp, 0 or 0|1|", item)
		}
		out = append(out, p)
	}
	return out, nil
}

// parseBookmarkTime reads YYYYMMDDThhmmss[.f…][Z] as UTC.
func parseBookmarkTime(s string) (time.Time, error) {
	t, err := time.ParseInLocation("20060102T150405", strings.TrimSuffix(s, "Z"), time.UTC)
	if err != nil {
		return time.Time{}, fmt.Errorf("timestamp %q: %w", s, err)
	}
	return t, nil
}
