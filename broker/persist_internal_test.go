package broker

import (
	"testing"
	"time"
)

func TestAckConflationOption(t *testing.T) {
	for _, tc := range []struct {
		opts []string
		want time.Duration
		bad  bool
	}{
		{nil, DefaultAckConflation, false},
		{[]string{"pretty"}, DefaultAckConflation, false},
		{[]string{"ack_conflation=250ms"}, 250 * time.Millisecond, false},
		{[]string{"pretty", "ack_conflation=2S"}, 2 * time.Second, false},
		{[]string{"ack_conflation=0"}, 0, false},
		{[]string{"ack_conflation=1.5"}, 1500 * time.Millisecond, false},
		{[]string{"ack_conflation=1d"}, 24 * time.Hour, false},
		{[]string{"ack_conflation=soon"}, DefaultAckConflation, true},
		{[]string{"ack_conflation=-1s"}, DefaultAckConflation, true},
	} {
		got, err := ackConflation(tc.opts)
		if got != tc.want || (err != nil) != tc.bad {
			t.Errorf("ackConflation(%q) = %v, %v; want %v, error %v", tc.opts, got, err, tc.want, tc.bad)
		}
	}
}
