package dbtest

import (
	"strings"
	"testing"
)

func TestDatabaseName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		testName string
		n        int64
		want     string
	}{
		{"TestLoad", 1, "testload_1"},
		{"TestLoad/bad_file:line_3", 12, "testload_bad_file_line_3_12"},
		{"TestÉté", 2, "test_t__2"},
		{"Test" + strings.Repeat("x", 80), 123, "test" + strings.Repeat("x", 55) + "_123"},
	}
	for _, tt := range tests {
		got := databaseName(tt.testName, tt.n)
		if got != tt.want {
			t.Errorf("databaseName(%q, %d) = %q, want %q", tt.testName, tt.n, got, tt.want)
		}
		if len(got) > maxIdentifier {
			t.Errorf("databaseName(%q, %d) is %d bytes, more than %d", tt.testName, tt.n, len(got), maxIdentifier)
		}
	}
}
