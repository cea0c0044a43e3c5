package config

import (
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	good := map[string]int64{
		"10MB": 10 << 20, "1GB": 1 << 30, "512KB": 512 << 10, "512kb": 512 << 10,
		"2G": 2 << 30, "10M": 10 << 20, "64k": 64 << 10, "1TB": 1 << 40, "1.5GB": 3 << 29,
		"4096": 4096, " 250MB ": 250 << 20, "0": 0, "3mB": 3 << 20,
	}
	for in, want := range good {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	bad := map[string]string{
		"":      `size "" does not start with a number`,
		"MB":    `size "MB" does not start with a number`,
		"10XB":  `size "10XB": unknown unit "xb" (use KB, MB, GB or TB)`,
		"-1MB":  `size "-1MB" does not start with a number`,
		"1.2.3": `size "1.2.3": bad number "1.2.3"`,
	}
	for in, want := range bad {
		if _, err := ParseSize(in); err == nil || err.Error() != want {
			t.Errorf("ParseSize(%q) error = %v; want %q", in, err, want)
		}
	}
}

func TestParseInterval(t *testing.T) {
	good := map[string]time.Duration{
		"30s": 30 * time.Second, "5m": 5 * time.Minute, "1h": time.Hour, "250ms": 250 * time.Millisecond,
		"250us": 250 * time.Microsecond, "10ns": 10, "1d": 24 * time.Hour, "1w": 7 * 24 * time.Hour,
		"1.5s": 1500 * time.Millisecond, "0s": 0, "45": 45 * time.Second, "2MS": 2 * time.Millisecond,
		"3M": 3 * time.Minute,
	}
	for in, want := range good {
		got, err := ParseInterval(in)
		if err != nil || got != want {
			t.Errorf("ParseInterval(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	bad := map[string]string{
		"s":     `interval "s" does not start with a number`,
		"10x":   `interval "10x": unknown unit "x" (use ns, us, ms, s, m, h, d or w)`,
		"5 min": `interval "5 min": unknown unit "min" (use ns, us, ms, s, m, h, d or w)`,
	}
	for in, want := range bad {
		if _, err := ParseInterval(in); err == nil || err.Error() != want {
			t.Errorf("ParseInterval(%q) error = %v; want %q", in, err, want)
		}
	}
}

func TestParsePercentBoolMaskCount(t *testing.T) {
	if v, err := ParsePercent("40%"); err != nil || v != 40 {
		t.Errorf("ParsePercent(40%%) = %v, %v", v, err)
	}
	if v, err := ParsePercent("100"); err != nil || v != 100 {
		t.Errorf("ParsePercent(100) = %v, %v", v, err)
	}
	for _, in := range []string{"0%", "140%", "x%"} {
		if _, err := ParsePercent(in); err == nil {
			t.Errorf("ParsePercent(%q) succeeded", in)
		}
	}
	for in, want := range map[string]bool{"True": true, "false": false, "enabled": true, "DISABLED": false, "yes": true, "0": false} {
		if got, err := ParseBool(in); err != nil || got != want {
			t.Errorf("ParseBool(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseBool("maybe"); err == nil {
		t.Error("ParseBool(maybe) succeeded")
	}
	if m, err := parseFileMask("0660"); err != nil || m != 0o660 {
		t.Errorf("parseFileMask(0660) = %o, %v", m, err)
	}
	for _, in := range []string{"0990", "66", "06600"} {
		if _, err := parseFileMask(in); err == nil {
			t.Errorf("parseFileMask(%q) succeeded", in)
		}
	}
	if n, err := parseCount("10M"); err != nil || n != 10_000_000 {
		t.Errorf("parseCount(10M) = %d, %v", n, err)
	}
	if n, err := parseCount("5k"); err != nil || n != 5000 {
		t.Errorf("parseCount(5k) = %d, %v", n, err)
	}
}
