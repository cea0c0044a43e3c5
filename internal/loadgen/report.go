package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteJSON writes r as one line of JSON.
func WriteJSON(w io.Writer, r any) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// WriteTable writes the results as a table for people.
func WriteTable(w io.Writer, rs []*Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	latency := false
	for _, r := range rs {
		latency = latency || r.TargetRate > 0
	}
	fmt.Fprint(tw, "scenario\tsize\tdeliveries\tdeliveries/s\tserver CPU µs/delivery\tviolations\t")
	if latency {
		fmt.Fprint(tw, "target msg/s\tp50 µs\tp99 µs\tp99.9 µs\t")
	}
	fmt.Fprintln(tw)
	for _, r := range rs {
		cpu := "-"
		if r.CPUus > 0 {
			cpu = fmt.Sprintf("%.2f", r.CPUus)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%d\t", r.Scenario, r.Size, r.Deliveries, Human(r.Rate), cpu, r.Violations())
		if latency {
			fmt.Fprintf(tw, "%.0f\t%.0f\t%.0f\t%.0f\t", r.TargetRate, r.P50us, r.P99us, r.P999us)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// Human formats a rate with a k or M suffix.
func Human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// WriteIdleTable writes the outcome of OpenIdle as a table for people.
func WriteIdleTable(w io.Writer, r *IdleResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "idle connections\tserver RSS before KB\tafter KB\tKB/connection\t")
	if r.RSSBeforeKB == 0 && r.RSSAfterKB == 0 {
		fmt.Fprintf(tw, "%d\t-\t-\t-\t\n", r.Connections)
	} else {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%.1f\t\n", r.Connections, r.RSSBeforeKB, r.RSSAfterKB, r.KBPerConn)
	}
	return tw.Flush()
}
