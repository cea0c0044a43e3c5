package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Byte multipliers. AMPS does not document whether "1MB" is 10^6 or 2^20
// bytes; we settle on powers of 1024 for every
// byte-valued element, including the one-letter forms ("2G").
const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
	tib = 1 << 40
)

// sizeUnits lists byte suffixes (k/kb, m/mb, g/gb, t/tb, matched in any
// case), longest first so "mb" wins over "m".
var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	{"kb", kib}, {"mb", mib}, {"gb", gib}, {"tb", tib},
	{"k", kib}, {"m", mib}, {"g", gib}, {"t", tib},
}

// intervalUnits lists interval suffixes, longest first so "ms" wins over
// "m" and "s".
var intervalUnits = []struct {
	suffix string
	unit   time.Duration
}{
	{"ns", time.Nanosecond}, {"us", time.Microsecond}, {"ms", time.Millisecond},
	{"s", time.Second}, {"m", time.Minute}, {"h", time.Hour},
	{"d", 24 * time.Hour}, {"w", 7 * 24 * time.Hour},
}

// splitNumber splits "10MB" into 10 and "mb" (the suffix lower-cased).
func splitNumber(s string) (num float64, suffix string, err error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	if i == 0 {
		return 0, "", fmt.Errorf("%q does not start with a number", s)
	}
	num, err = strconv.ParseFloat(s[:i], 64)
	if err != nil {
		return 0, "", fmt.Errorf("%q: bad number %q", s, s[:i])
	}
	return num, strings.ToLower(strings.TrimSpace(s[i:])), nil
}

// ParseSize parses an AMPS byte size: a number, optionally with a decimal
// part, followed by k, kb, m, mb, g, gb, t or tb in any case, or nothing
// (bytes). Examples: "10MB", "2G", "512kb", "1.5GB", "4096". Multipliers
// are powers of 1024, as AMPS does not document the base.
func ParseSize(s string) (int64, error) {
	num, suf, err := splitNumber(s)
	if err != nil {
		return 0, fmt.Errorf("size %w", err)
	}
	mult := 1.0
	if suf != "" {
		found := false
		for _, u := range sizeUnits {
			if suf == u.suffix {
				mult, found = u.mult, true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("size %q: unknown unit %q (use KB, MB, GB or TB)", s, suf)
		}
	}
	v := num * mult
	if v > math.MaxInt64/2 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(v), nil
}

// ParseInterval parses an AMPS time interval: a number followed by ns, us,
// ms, s, m, h, d or w in any case ("250ms", "30s", "5m", "1h", "1w").
// Decimals are allowed ("1.5s"). A bare number means seconds: AMPS leaves
// this open and seconds is its most common unit. "0s" is legal.
func ParseInterval(s string) (time.Duration, error) {
	num, suf, err := splitNumber(s)
	if err != nil {
		return 0, fmt.Errorf("interval %w", err)
	}
	unit := time.Second
	if suf != "" {
		found := false
		for _, u := range intervalUnits {
			if suf == u.suffix {
				unit, found = u.unit, true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("interval %q: unknown unit %q (use ns, us, ms, s, m, h, d or w)", s, suf)
		}
	}
	v := num * float64(unit)
	if v > math.MaxInt64/2 {
		return 0, fmt.Errorf("interval %q is too long", s)
	}
	return time.Duration(v), nil
}

// ParsePercent parses "40%" or "40" into 40. The value must lie in (0,100].
func ParsePercent(s string) (float64, error) {
	t := strings.TrimSuffix(strings.TrimSpace(s), "%")
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil {
		return 0, fmt.Errorf("percentage %q is not a number", s)
	}
	if !(v > 0 && v <= 100) {
		return 0, fmt.Errorf("percentage %q must be in (0,100]", s)
	}
	return v, nil
}

// ParseBool parses the boolean spellings AMPS files use, which mix
// true/false and enabled/disabled, plus enable/disable, yes/no, on/off and
// 1/0, in any case.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "enabled", "enable", "yes", "on", "1":
		return true, nil
	case "false", "disabled", "disable", "no", "off", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (use true/false or enabled/disabled)", s)
}

// parseFileMask parses 3 or 4 octal digits ("0660", "660").
func parseFileMask(s string) (uint32, error) {
	s = strings.TrimSpace(s)
	if len(s) < 3 || len(s) > 4 {
		return 0, fmt.Errorf("file mask %q must be 3 or 4 octal digits", s)
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		return 0, fmt.Errorf("file mask %q is not octal", s)
	}
	if v > 0o7777 {
		return 0, fmt.Errorf("file mask %q is out of range", s)
	}
	return uint32(v), nil
}

// parseCount parses a count with an optional exponent suffix k (10^3) or
// M (10^6), as AMPS writes large counts ("10M").
func parseCount(s string) (int64, error) {
	num, suf, err := splitNumber(s)
	if err != nil {
		return 0, fmt.Errorf("count %w", err)
	}
	switch suf {
	case "":
	case "k":
		num *= 1e3
	case "m": // units are case-insensitive and a count has no minutes, so m means 10^6
		num *= 1e6
	default:
		return 0, fmt.Errorf("count %q: unknown suffix %q (use k or M)", s, suf)
	}
	if num > math.MaxInt64/2 {
		return 0, fmt.Errorf("count %q is too large", s)
	}
	return int64(num), nil
}

// formatSize renders bytes in the largest exact 1024 unit, for Summary.
func formatSize(n int64) string {
	switch {
	case n == 0:
		return "0"
	case n%tib == 0:
		return strconv.FormatInt(n/tib, 10) + "TB"
	case n%gib == 0:
		return strconv.FormatInt(n/gib, 10) + "GB"
	case n%mib == 0:
		return strconv.FormatInt(n/mib, 10) + "MB"
	case n%kib == 0:
		return strconv.FormatInt(n/kib, 10) + "KB"
	}
	return strconv.FormatInt(n, 10)
}
