package web

import "testing"

func TestSafeNext(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/pipelines/load_sales_data": "/pipelines/load_sales_data",
		"/runs/3?x=1#run-3":          "/runs/3?x=1#run-3",
		"":                           "/",
		"//evil.example":             "/",
		"/\\evil.example":            "/",
		"/\t/evil.example":           "/",
		"/\n/evil.example":           "/",
		"https://evil.example/":      "/",
		"javascript:alert(1)":        "/",
		"pipelines":                  "/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
