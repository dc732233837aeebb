package web

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

// TestTemplatesHaveNoInlineCode checks every template against what the
// UI's Content-Security-Policy refuses: a <script> without src (other than
// a JSON data block), a <style> element, a style attribute, an inline
// event handler or a javascript: URL.
func TestTemplatesHaveNoInlineCode(t *testing.T) {
	t.Parallel()
	scriptTag := regexp.MustCompile(`<script\b[^>]*>`)
	forbidden := regexp.MustCompile(`(?i)<style\b|\sstyle=|\son[a-z]+=|javascript:`)
	err := fs.WalkDir(templateFS, "templates", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(templateFS, path)
		if err != nil {
			return err
		}
		for _, tag := range scriptTag.FindAllString(string(b), -1) {
			if !strings.Contains(tag, " src=") && !strings.Contains(tag, `type="application/json"`) {
				t.Errorf("%s: inline script %s", path, tag)
			}
		}
		for _, m := range forbidden.FindAllString(string(b), -1) {
			t.Errorf("%s: %q, which the CSP refuses", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
