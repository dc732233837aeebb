package web

import (
	"testing"
	"time"
)

func TestAgo(t *testing.T) {
	t.Parallel()
	now := time.Date(2020, 7, 15, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "just now"},
		{59 * time.Second, "just now"},
		{5 * time.Minute, "5 min ago"},
		{3*time.Hour + 59*time.Minute, "3 h ago"},
		{47 * time.Hour, "47 h ago"},
		{14*24*time.Hour + 3*time.Hour, "14 d ago"},
		{-time.Minute, "just now"}, // a clock behind the database's
	} {
		if got := ago(now, now.Add(-tc.d)); got != tc.want {
			t.Errorf("ago(%s) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
