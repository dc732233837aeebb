package web

import (
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace"
)

// TestParseUntil reads the end of a pause as the Pause form's Until field
// offers it, ISO in UTC like every time millrace shows, and refuses the
// rest with an example.
func TestParseUntil(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	want := time.Date(2026, 12, 24, 8, 0, 0, 0, time.UTC)
	for _, in := range []string{"2026-12-24 08:00", "2026-12-24T08:00", "2026-12-24T08:00Z", "2026-12-24 08:00 UTC",
		"2026-12-24 08:00:00", "2026-12-24T08:00:00Z", "2026-12-24T09:00+01:00", " 2026-12-24 08:00:00 UTC ", "454h"} {
		got, err := ParseUntil(in, now)
		if err != nil || got == nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("ParseUntil(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if got, err := ParseUntil("", now); got != nil || err != nil {
		t.Errorf(`ParseUntil("") = %v, %v; want no end`, got, err)
	}
	for _, in := range []string{"12/24/2026, 08:00 AM", "tomorrow"} {
		_, err := ParseUntil(in, now)
		if err == nil || !millrace.IsPermanent(err) || !strings.Contains(err.Error(), "2026-12-24 08:00") {
			t.Errorf("ParseUntil(%q) = %v, want a refusal with an example", in, err)
		}
	}
}
