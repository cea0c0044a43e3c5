package admin

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The history of a leaf (spec §1.2, §4.1): a leaf of /amps/instance/
// x_broker or /amps/instance/processors/all asked with t0 and/or t1, or
// with the ".csv" suffix, answers "timestamp,value" lines from the
// sampled history, one per sample in the range. Other leaves are live
// values only (501), as is JSON for a time range: the spec leaves its
// shape open.

// seriesField reads one leaf's value from a sample, or from the interval
// between two (a rate).
type seriesField struct {
	counter func(Sample) int64
	rate    bool // per second over the interval ending at the sample
}

// seriesFields are the leaves with a history, by their path after
// "amps/instance/".
var seriesFields = func() map[string]seriesField {
	in := func(s Sample) int64 { return s.MessagesIn }
	out := func(s Sample) int64 { return s.MessagesOut }
	bin := func(s Sample) int64 { return s.BytesIn }
	bout := func(s Sample) int64 { return s.BytesOut }
	f := map[string]seriesField{
		"x_broker/connections":   {counter: func(s Sample) int64 { return s.Connections }},
		"x_broker/subscriptions": {counter: func(s Sample) int64 { return s.Subscriptions }},
	}
	for name, c := range map[string]func(Sample) int64{
		"x_broker/messages_in": in, "x_broker/messages_out": out, "x_broker/bytes_in": bin, "x_broker/bytes_out": bout,
		"processors/all/messages_received": in, "processors/all/messages_received_bytes": bin,
		"processors/all/matches_found": out, "processors/all/matches_found_bytes": bout,
	} {
		f[name] = seriesField{counter: c}
		f[name+"_per_sec"] = seriesField{counter: c, rate: true}
	}
	return f
}()

// timeRange is the t0/t1 of a request: both inclusive; from == to asks
// for the one sample taken at that instant.
type timeRange struct {
	from, to       time.Time
	hasFrom, hasTo bool
}

func (tr timeRange) holds(t time.Time) bool {
	if tr.hasFrom && tr.hasTo && tr.from.Equal(tr.to) {
		return t.Equal(tr.from)
	}
	return (!tr.hasFrom || !t.Before(tr.from)) && (!tr.hasTo || !t.After(tr.to))
}

// parseRange reads t0 and t1 from q.
func parseRange(q url.Values) (timeRange, error) {
	var tr timeRange
	var err error
	if q.Has("t0") {
		if tr.from, err = parseSampleTime(q.Get("t0")); err != nil {
			return tr, errorf(http.StatusBadRequest, "parameter t0: %v", err)
		}
		tr.hasFrom = true
	}
	if q.Has("t1") {
		if tr.to, err = parseSampleTime(q.Get("t1")); err != nil {
			return tr, errorf(http.StatusBadRequest, "parameter t1: %v", err)
		}
		tr.hasTo = true
	}
	if tr.hasFrom && tr.hasTo && tr.to.Before(tr.from) {
		return tr, errorf(http.StatusBadRequest, "t1 %s is before t0 %s", q.Get("t1"), q.Get("t0"))
	}
	return tr, nil
}

// sampleTimeFill completes a truncated time: the digits of
// YYYYMMDDhhmmss not given are taken from it (January 1st, midnight).
const sampleTimeFill = "00000101000000"

// parseSampleTime reads an AMPS time, UTC YYYYMMDDThhmmss[.ffffff][Z]
// (the output's form is accepted back), which may be truncated anywhere
// ("20111130T0" is that day at 00:00).
func parseSampleTime(s string) (time.Time, error) {
	digits, frac, hasFrac := strings.Cut(strings.TrimSuffix(s, "Z"), ".")
	if len(digits) > 8 {
		if digits[8] != 'T' {
			return time.Time{}, fmt.Errorf("%q is not YYYYMMDDThhmmss[.ffffff]", s)
		}
		digits = digits[:8] + digits[9:]
	}
	ok := len(digits) >= 4 && len(digits) <= len(sampleTimeFill) && (!hasFrac || len(digits) == len(sampleTimeFill) && frac != "")
	for _, c := range digits + frac {
		ok = ok && c >= '0' && c <= '9'
	}
	if !ok {
		return time.Time{}, fmt.Errorf("%q is not YYYYMMDDThhmmss[.ffffff]", s)
	}
	full := digits + sampleTimeFill[len(digits):]
	if hasFrac {
		full += "." + frac
	}
	t, err := time.ParseInLocation("20060102150405.999999999", full, time.UTC)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a valid time: %v", s, err)
	}
	return t, nil
}

// serveSeries answers a leaf's history: "timestamp,value" lines, oldest
// first, for the samples in the request's range.
func (h *Handler) serveSeries(w http.ResponseWriter, r *http.Request, req request) error {
	path := "/" + strings.Join(req.segs, "/")
	tr, err := parseRange(r.URL.Query())
	if err != nil {
		return err
	}
	var f seriesField
	ok := len(req.segs) > 2 && req.segs[1] == "instance"
	if ok {
		f, ok = seriesFields[strings.Join(req.segs[2:], "/")]
	}
	if !ok {
		found, _, exists := find(h.tree(false), req.segs[1:])
		_, leaf := found.(string)
		switch {
		case !exists:
			return errorf(http.StatusNotFound, "no admin node at %s", path)
		case !leaf && req.format == "csv":
			return errorf(http.StatusBadRequest, "%s is not a leaf: .csv is for a leaf's history", path)
		case !leaf:
			return errorf(http.StatusNotImplemented, "%s is not a leaf: the history of a whole node (t0 = t1) is not supported", path)
		}
		return errorf(http.StatusNotImplemented, "%s has no history: only the leaves of x_broker and processors/all keep one; the value is live", path)
	}
	if req.format == "json" {
		return errorf(http.StatusNotImplemented, "a history in JSON is not supported; ask %s.csv or %s without a suffix", req.segs[len(req.segs)-1], req.segs[len(req.segs)-1])
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	if r.Method == http.MethodHead {
		return nil
	}
	var sb strings.Builder
	ss := h.hist.samples()
	for i, s := range ss {
		// Times are written, and so asked for, to the microsecond.
		at := s.Time.UTC().Truncate(time.Microsecond)
		if !tr.holds(at) {
			continue
		}
		var v string
		switch {
		case !f.rate:
			v = itoa(f.counter(s))
		case i == 0:
			continue // a rate needs the sample before
		default:
			secs := s.Time.Sub(ss[i-1].Time).Seconds()
			if secs <= 0 {
				continue
			}
			v = ftoa(float64(f.counter(s)-f.counter(ss[i-1])) / secs)
		}
		fmt.Fprintf(&sb, "%s,%s\n", at.Format(timestampLayout), v)
	}
	_, err = w.Write([]byte(sb.String()))
	return err
}
