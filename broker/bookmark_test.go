package broker_test

import (
	"testing"
	"time"

	"github.com/ampsbroker/ampsbroker/broker"
	"github.com/ampsbroker/ampsbroker/protocol"
)

// What a broker without a transaction log answers to each bookmark form
// (semantics §7.3): by default a live subscription, with "completed" at
// once and never "persisted"; ranges, bad bookmarks, bookmark_not_found=fail
// on a specific bookmark, and sow_and_subscribe with any bookmark but NOW
// are refused; with BookmarkFail every bookmark subscription is.
func TestBookmarksWithoutJournal(t *testing.T) {
	for _, tc := range []struct {
		fallback broker.BookmarkFallback
		cmd, bm  string
		opts     string
		reason   string // "" for success
	}{
		{broker.BookmarkLive, "subscribe", "0", "", ""},
		{broker.BookmarkLive, "subscribe", "0|1|", "", ""},
		{broker.BookmarkLive, "subscribe", "6745394729381|42|", "", ""},
		{broker.BookmarkLive, "subscribe", "1|2|,3|4|", "", ""},
		{broker.BookmarkLive, "subscribe", "20261201T120000Z", "", ""},
		{broker.BookmarkLive, "subscribe", "20261201T120000.123456", "live,fully_durable", ""},
		{broker.BookmarkLive, "subscribe", "1|2|", "bookmark_not_found=now", ""},
		{broker.BookmarkLive, "subscribe", "1|2|", "bookmark_not_found=fail", broker.ReasonInvalidBookmark},
		{broker.BookmarkLive, "subscribe", "0", "bookmark_not_found=fail", ""},
		{broker.BookmarkLive, "subscribe", "1|2|", "bookmark_not_found=later", broker.ReasonInvalidOptions},
		{broker.BookmarkLive, "subscribe", "[0:1|5|)", "", broker.ReasonBookmarkNotSupp},
		{broker.BookmarkLive, "subscribe", "not a bookmark", "", broker.ReasonInvalidBookmark},
		{broker.BookmarkLive, "subscribe", "0", "pause", broker.ReasonReplayOnly},
		{broker.BookmarkLive, "subscribe", "0", "rate=2X", broker.ReasonReplayOnly},
		{broker.BookmarkLive, "sow_and_subscribe", "0|1|", "", ""},
		{broker.BookmarkLive, "sow_and_subscribe", "0", "", broker.ReasonBookmarkNotSupp},
		{broker.BookmarkFail, "subscribe", "0", "", broker.ReasonInvalidBookmark},
		{broker.BookmarkFail, "subscribe", "0|1|", "", broker.ReasonInvalidBookmark},
		{broker.BookmarkFail, "subscribe", "", "", ""},
	} {
		tb := startBroker(t, &broker.Options{BookmarkFallback: tc.fallback})
		c := tb.Dial(tb.TCPURL(), nil)
		c.Logon("bm")
		c.SendJSON(map[string]any{"c": tc.cmd, "cid": "s", "t": "orders", "bm": tc.bm, "o": tc.opts, "a": "processed,completed,persisted"}, nil)
		name := tc.cmd + " bm=" + tc.bm + " o=" + tc.opts
		a := c.Read()
		if tc.reason != "" {
			if a.Header.Status != protocol.StatusFailure || a.Header.Reason != tc.reason {
				t.Errorf("%s: got %s, want failure %q", name, a, tc.reason)
			}
			continue
		}
		if a.Header.AckType != "processed" || a.Header.Status != protocol.StatusSuccess {
			t.Errorf("%s: got %s, want processed success", name, a)
			continue
		}
		if tc.cmd == "sow_and_subscribe" {
			readGroup(t, c, "s")
		}
		if a := c.Read(); a.Header.AckType != "completed" {
			t.Errorf("%s: after processed %s, want completed at once", name, a)
		}
		c.Publish("orders", []byte(`{"live":1}`))
		if m := c.Next(); m.Header.Command != "p" || m.Header.Bookmark != "" {
			t.Errorf("%s: live delivery %s (no bm without a journal)", name, m)
		}
		c.ExpectNothing(20 * time.Millisecond) // nothing else, persisted acks included
	}
}
