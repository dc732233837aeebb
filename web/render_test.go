package web

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/pipelines"
)

func TestFormatTime(t *testing.T) {
	t.Parallel()
	at := time.Date(2020, 7, 1, 2, 3, 4, 500_000_000, time.FixedZone("CEST", 2*3600))
	for _, tc := range []struct {
		name, got, want string
	}{
		{"zero", formatTime(time.Time{}), "–"},
		{"in UTC, to the second", formatTime(at), "2020-07-01 00:03:04 UTC"},
		{"nil", formatTimePtr(nil), "–"},
		{"a pointer", formatTimePtr(&at), "2020-07-01 00:03:04 UTC"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

// TestTimeHTML: a time in a page is a <time> element with the instant in
// its datetime, which app.css keeps on one line.
func TestTimeHTML(t *testing.T) {
	t.Parallel()
	at := time.Date(2020, 7, 1, 2, 3, 4, 500_000_000, time.FixedZone("CEST", 2*3600))
	for _, tc := range []struct {
		name string
		got  template.HTML
		want string
	}{
		{"a time", timeHTML(at), `<time datetime="2020-07-01T00:03:04Z">2020-07-01 00:03:04 UTC</time>`},
		{"zero", timeHTML(time.Time{}), "–"},
		{"nil", timePtrHTML(nil), "–"},
		{"a pointer", timePtrHTML(&at), `<time datetime="2020-07-01T00:03:04Z">2020-07-01 00:03:04 UTC</time>`},
	} {
		if string(tc.got) != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

// TestFormatCount writes counts of rows with thousands separators.
func TestFormatCount(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0", 7: "7", 415: "415", 1000: "1,000", 34422: "34,422", 150000: "150,000",
		1500000: "1,500,000", -1234: "-1,234", 9223372036854775807: "9,223,372,036,854,775,807"} {
		if got := formatCount(n); got != want {
			t.Errorf("formatCount(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	t.Parallel()
	start := time.Date(2020, 7, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		end  time.Duration // after start; negative for a run still going
		want string
	}{
		{-1, "running"},
		{0, "0s"},
		{1234567 * time.Microsecond, "1.235s"},
		{400 * time.Microsecond, "0s"},
		{90 * time.Minute, "1h30m0s"},
	} {
		var end *time.Time
		if tc.end >= 0 {
			e := start.Add(tc.end)
			end = &e
		}
		if got := formatDuration(start, end); got != tc.want {
			t.Errorf("formatDuration(%v) = %q, want %q", tc.end, got, tc.want)
		}
	}
}

func TestStateSymbol(t *testing.T) {
	t.Parallel()
	for st, want := range map[millrace.State]string{
		millrace.StateSucceeded: "✓", millrace.StateFailed: "✗", millrace.StateRunning: "▶",
		millrace.StateQueued: "…", millrace.StateMissing: "○", "": "·", "exploded": "·",
	} {
		if got := stateSymbol(st); got != want {
			t.Errorf("stateSymbol(%q) = %q, want %q", st, got, want)
		}
	}
}

func TestPlural(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n    int
		want string
	}{{0, "0 months"}, {1, "1 month"}, {2, "2 months"}, {-1, "-1 months"}} {
		if got := plural(tc.n, "month"); got != tc.want {
			t.Errorf("plural(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestTitleOf(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{"home": "Pipelines", "data": "Data", "login": "Log in", "pipeline": "pipeline", "error": "error"} {
		if got := titleOf(name); got != want {
			t.Errorf("titleOf(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestFlash(t *testing.T) {
	t.Parallel()
	for _, msg := range []string{"", "Queued load_sales_data 2020-04.", "; = , \" \\ é ✓ \n"} {
		enc := encodeFlash(msg)
		if strings.Trim(enc, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Errorf("encodeFlash(%q) = %q, which a cookie value may not hold", msg, enc)
		}
		if got := decodeFlash(enc); got != msg {
			t.Errorf("decodeFlash(encodeFlash(%q)) = %q", msg, got)
		}
	}
	if got := decodeFlash("not base64!"); got != "" {
		t.Errorf("a damaged flash decodes to %q, want nothing", got)
	}
}

func TestToJSON(t *testing.T) {
	t.Parallel()
	got, err := toJSON(chartData{X: []int64{1}, Series: []chartSeries{{Label: "</script>&"}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"x":[1],"series":[{"label":"\u003c/script\u003e\u0026","values":null}]}`; string(got) != want {
		t.Errorf("toJSON = %s, want %s", got, want)
	}
	if _, err := toJSON(func() {}); err == nil {
		t.Error("toJSON of a func: no error")
	}
}

func TestErrorStatus(t *testing.T) {
	t.Parallel()
	internal := "internal error: the details are in millrace's log"
	for _, tc := range []struct {
		name       string
		err        error
		wantStatus int
		wantMsg    string
	}{
		{"no such run", fmt.Errorf("run 7: %w", ledger.ErrRunNotFound), http.StatusNotFound, "run 7: no such run"},
		{"no such pipeline", millrace.Permanent(fmt.Errorf("%w %q", pipelines.ErrUnknown, "nope")), http.StatusNotFound, `no such pipeline "nope"`},
		{"a refusal", millrace.Permanent(errors.New("month 2020-07 has not ended yet")), http.StatusUnprocessableEntity, "month 2020-07 has not ended yet"},
		{"a missing file", fmt.Errorf("open sales: %w", millrace.ErrNotFound), http.StatusUnprocessableEntity, "open sales: " + millrace.ErrNotFound.Error()},
		{"anything else stays in the log", errors.New("read partitions: connection refused"), http.StatusInternalServerError, internal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if status, msg := errorStatus(tc.err); status != tc.wantStatus || msg != tc.wantMsg {
				t.Errorf("errorStatus = %d %q, want %d %q", status, msg, tc.wantStatus, tc.wantMsg)
			}
		})
	}
}
