package protocol

import (
	"strconv"
	"unicode/utf8"
)

// allFields has every known Field bit set.
const allFields = FieldGracePeriod<<1 - 1

// AppendHeader appends h to dst as a compact JSON object (wire spec §5: no
// spaces) and returns the extended slice. It allocates nothing when dst has
// room.
//
// Which keys are written: string fields when non-empty (empty means absent,
// §5), numeric fields when their bit is set in h.Present, booleans when true.
// Abbreviated keys are written in their long form: "filter", "opts" (the key
// clients read on acks), "version" (every client reads "version", never its
// listed abbreviation "v"), "max_msgs".
//
// Key order is "c, cid, s, …others…", with the others in this fixed order,
// chosen so that a logon ack lists its keys as real AMPS does (c, cid, s,
// bm, client_name, a, status, reason, version) and a delivery comes out as
// c, t, sids, bm, ts, k, x, lp, l:
//
//	c cid s t sub_id sids query_id bm client_name user_id pw a status ts k
//	reason x lp version mt filter opts orderby sow_keys
//	bs top_n e records_returned records_inserted records_updated
//	records_deleted topic_matches matches gseq skip_n max_msgs
//	timeout_interval grace_period
//	send_empty send_keys send_oof data_only send_subscription_ids l
//
// "l" comes last, right before the body it measures. Message.AppendHeader
// and SharedHeader write their headers with the same code, in the same order.
//
// The JS client re-reads "s" from the header text with the pattern
// `"s":<digits>,` (wire spec §5, "JS sequence-number trap"), so s is a bare
// integer that must be followed by a comma. When no key would follow s in
// its place after cid, s is written right after c instead. A header holding
// nothing but c and s (or s alone) cannot satisfy the pattern; the broker
// never sends one (every message with s is an ack carrying a status).
// Because the encoder escapes every '"' inside values, the text `"s":`
// cannot occur anywhere else in the header.
func AppendHeader(dst []byte, h *Header) []byte {
	start := len(dst)
	dst, _ = appendKeys(dst, h, h.hasKeysAfterSeq(), true)
	return closeObject(dst, start)
}

// Every key is written with a leading comma; closeObject then overwrites the
// first comma with the opening brace.

// closeObject turns the comma-led keys in dst[start:] into a JSON object.
func closeObject(dst []byte, start int) []byte {
	if len(dst) == start {
		return append(dst, '{', '}')
	}
	dst[start] = '{'
	return append(dst, '}')
}

// appendKeys writes h's keys in AppendHeader's order, each with a leading
// comma, and returns the extended slice and the length it had where "sids"
// goes. withSids says whether h.SubIDs is written (SharedHeader leaves the
// place empty). keysAfterSeq says whether any key other than c, cid and s
// follows, which decides where s goes (see AppendHeader).
func appendKeys(dst []byte, h *Header, keysAfterSeq, withSids bool) ([]byte, int) {
	hasSeq := h.Present&FieldSequence != 0
	seqEarly := hasSeq && !keysAfterSeq

	dst = appendStringKey(dst, `,"c":`, h.Command)
	if seqEarly {
		dst = appendSeq(dst, h.Sequence)
	}
	dst = appendStringKey(dst, `,"cid":`, h.CommandID)
	if hasSeq && !seqEarly {
		dst = appendSeq(dst, h.Sequence)
	}
	dst = appendStringKey(dst, `,"t":`, h.Topic)
	dst = appendStringKey(dst, `,"sub_id":`, h.SubID)
	mid := len(dst)
	if withSids {
		dst = appendStringKey(dst, `,"sids":`, h.SubIDs)
	}
	dst = appendStringKey(dst, `,"query_id":`, h.QueryID)
	dst = appendStringKey(dst, `,"bm":`, h.Bookmark)
	dst = appendStringKey(dst, `,"client_name":`, h.ClientName)
	dst = appendStringKey(dst, `,"user_id":`, h.UserID)
	dst = appendStringKey(dst, `,"pw":`, h.Password)
	dst = appendStringKey(dst, `,"a":`, h.AckType)
	dst = appendStringKey(dst, `,"status":`, h.Status)
	dst = appendStringKey(dst, `,"ts":`, h.Timestamp)
	dst = appendStringKey(dst, `,"k":`, h.SOWKey)
	dst = appendStringKey(dst, `,"reason":`, h.Reason)
	dst = appendStringKey(dst, `,"x":`, h.CorrelationID)
	dst = appendStringKey(dst, `,"lp":`, h.LeasePeriod)
	dst = appendStringKey(dst, `,"version":`, h.Version)
	dst = appendStringKey(dst, `,"mt":`, h.MessageType)
	dst = appendStringKey(dst, `,"filter":`, h.Filter)
	dst = appendStringKey(dst, `,"opts":`, h.Options)
	dst = appendStringKey(dst, `,"orderby":`, h.OrderBy)
	dst = appendStringKey(dst, `,"sow_keys":`, h.SOWKeys)

	if h.Present&(allFields&^(FieldSequence|FieldLength)) != 0 {
		dst = appendNumKey(dst, `,"bs":`, h, FieldBatchSize)
		dst = appendNumKey(dst, `,"top_n":`, h, FieldTopN)
		dst = appendNumKey(dst, `,"e":`, h, FieldExpiration)
		dst = appendNumKey(dst, `,"records_returned":`, h, FieldRecordsReturned)
		dst = appendNumKey(dst, `,"records_inserted":`, h, FieldRecordsInserted)
		dst = appendNumKey(dst, `,"records_updated":`, h, FieldRecordsUpdated)
		dst = appendNumKey(dst, `,"records_deleted":`, h, FieldRecordsDeleted)
		dst = appendNumKey(dst, `,"topic_matches":`, h, FieldTopicMatches)
		dst = appendNumKey(dst, `,"matches":`, h, FieldMatches)
		dst = appendNumKey(dst, `,"gseq":`, h, FieldGroupSeq)
		dst = appendNumKey(dst, `,"skip_n":`, h, FieldSkipN)
		dst = appendNumKey(dst, `,"max_msgs":`, h, FieldMaxMessages)
		dst = appendNumKey(dst, `,"timeout_interval":`, h, FieldTimeoutInterval)
		dst = appendNumKey(dst, `,"grace_period":`, h, FieldGracePeriod)
	}

	dst = appendBoolKey(dst, `,"send_empty":true`, h.SendEmpty)
	dst = appendBoolKey(dst, `,"send_keys":true`, h.SendKeys)
	dst = appendBoolKey(dst, `,"send_oof":true`, h.SendOOF)
	dst = appendBoolKey(dst, `,"data_only":true`, h.DataOnly)
	dst = appendBoolKey(dst, `,"send_subscription_ids":true`, h.SendSubscriptionIDs)

	return appendNumKey(dst, `,"l":`, h, FieldLength), mid
}

// hasKeysAfterSeq reports whether AppendHeader writes any key other than c,
// cid and s.
func (h *Header) hasKeysAfterSeq() bool {
	return h.Present&allFields&^FieldSequence != 0 ||
		h.Topic != "" || h.SubID != "" || h.SubIDs != "" || h.QueryID != "" ||
		h.Bookmark != "" || h.ClientName != "" || h.UserID != "" || h.Password != "" ||
		h.AckType != "" || h.Status != "" || h.Timestamp != "" || h.SOWKey != "" ||
		h.Reason != "" || h.CorrelationID != "" || h.LeasePeriod != "" ||
		h.Version != "" || h.MessageType != "" || h.Filter != "" || h.Options != "" ||
		h.OrderBy != "" || h.SOWKeys != "" ||
		h.SendEmpty || h.SendKeys || h.SendOOF || h.DataOnly || h.SendSubscriptionIDs
}

// appendSeq writes s as a bare integer with no space after the colon, the
// form the JS client's pattern needs (wire spec §5).
func appendSeq(dst []byte, v uint64) []byte {
	dst = append(dst, `,"s":`...)
	return strconv.AppendUint(dst, v, 10)
}

func appendStringKey(dst []byte, key, v string) []byte {
	if v == "" {
		return dst
	}
	dst = append(dst, key...)
	return AppendString(dst, v)
}

func appendNumKey(dst []byte, key string, h *Header, f Field) []byte {
	if h.Present&f == 0 {
		return dst
	}
	dst = append(dst, key...)
	return strconv.AppendUint(dst, *h.num(f), 10)
}

func appendBoolKey(dst []byte, keyTrue string, v bool) []byte {
	if !v {
		return dst
	}
	return append(dst, keyTrue...)
}

// AppendUint appends the decimal form of v to dst.
func AppendUint(dst []byte, v uint64) []byte { return strconv.AppendUint(dst, v, 10) }

const hexDigits = "0123456789abcdef"

// plainJSONByte tells the bytes a JSON string holds as they are and that
// are whole characters: printable ASCII but for '"' and '\\'.
var plainJSONByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// AppendString appends s to dst as a JSON string literal, quotes included,
// and returns the extended slice. It escapes '"', '\\' and control
// characters (with the short forms \b \f \n \r \t where JSON has them) and
// writes each byte of invalid UTF-8 as \ufffd, so the result is always valid
// JSON in UTF-8. Other characters, '/' and non-ASCII included, are written
// as they are. It allocates nothing when dst has room.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	// Topics, ids and names are nearly always printable ASCII: the bytes
	// that need no escape are skipped with one table test each.
	i := 0
	for i < len(s) && plainJSONByte[s[i]] {
		i++
	}
	if i == len(s) {
		dst = append(dst, s...)
		return append(dst, '"')
	}
	done := 0 // s[:done] has been written
	for i < len(s) {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, s[done:i]...)
				dst = append(dst, `\ufffd`...)
				i++
				done = i
				continue
			}
			i += size
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		dst = append(dst, s[done:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		done = i
	}
	dst = append(dst, s[done:]...)
	return append(dst, '"')
}
