package web

import (
	"fmt"
	"testing"
)

// TestParseLog reads slog's text lines into records without the run's own
// fields, filters by level, and keeps a line it cannot parse whole.
func TestParseLog(t *testing.T) {
	t.Parallel()
	log := `time=2026-12-01T10:00:00.000Z level=INFO msg="run started" pipeline=load_sales_data partition=2020-01 run_id=7 attempt=1 trigger=cli
time=2026-12-01T10:00:01.000Z level=WARN msg="slow source" pipeline=load_sales_data partition=2020-01 run_id=7 attempt=1 key=sales/2020-01-01/sales.csv note="a \"quoted\" value"

not a log line
time=2026-12-01T10:00:02.000Z level=ERROR msg="run failed" pipeline=load_sales_data err="boom: x=1"
`
	got := fmt.Sprint(parseLog(log, ""))
	want := `[{2026-12-01T10:00:00.000Z INFO run started [{trigger cli}]} {2026-12-01T10:00:01.000Z WARN slow source [{key sales/2020-01-01/sales.csv} {note a "quoted" value}]} { INFO not a log line []} {2026-12-01T10:00:02.000Z ERROR run failed [{err boom: x=1}]}]`
	if got != want {
		t.Errorf("parseLog:\n%s\nwant\n%s", got, want)
	}
	if got := parseLog(log, "warn"); len(got) != 2 || got[0].Level != "WARN" || got[1].Level != "ERROR" {
		t.Errorf("parseLog at warn: %v", got)
	}
}
