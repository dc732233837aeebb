package web_test

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// normalizeHTML is a small normaliser of the HTML that millrace's
// templates write, built on the standard library alone (golang.org/x/net
// is not a dependency of millrace): encoding/xml in its lenient mode, with
// HTML's void elements and named entities, reads the page, and the tree is
// written back one node a line, indented by depth, in the manner of the
// html5lib tree tests:
//
//	<!doctype html>
//	<a>
//	  href="/data"
//	  "Data"
//
// Element names are lower-cased, attributes sorted by name (one a line,
// their values exact), end tags left out (the indentation holds the
// nesting), comments dropped, and the text outside <pre> has its white
// space (ASCII's, see isHTMLSpace) collapsed to single spaces and trimmed,
// white space alone being dropped; text inside <pre> is kept exactly, a
// line of the text a line.
// So two pages that differ only in layout, attribute order or character
// references normalise alike.
//
// It is not an HTML5 parser: it expects what html/template writes from
// millrace's templates, every element but the void ones closed and no raw
// "<" inside <script> (html/template escapes it in JSON data blocks). A
// page that breaks these rules may fail to parse, and is reported.
func normalizeHTML(src string) (string, error) {
	d := xml.NewDecoder(strings.NewReader(src))
	d.Strict, d.AutoClose, d.Entity = false, xml.HTMLAutoClose, xml.HTMLEntity
	var b strings.Builder
	depth, pre := 0, 0
	line := func(indent int, s string) {
		b.WriteString(strings.Repeat("  ", indent))
		b.WriteString(s)
		b.WriteByte('\n')
	}
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			l, c := d.InputPos()
			return "", fmt.Errorf("parse HTML at line %d, column %d: %w", l, c, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			name := qualified(tok.Name)
			line(depth, "<"+name+">")
			attrs := make([]string, 0, len(tok.Attr))
			for _, a := range tok.Attr {
				attrs = append(attrs, qualified(a.Name)+"="+strconv.Quote(a.Value))
			}
			slices.Sort(attrs)
			for _, a := range attrs {
				line(depth+1, a)
			}
			depth++
			if name == "pre" {
				pre++
			}
		case xml.EndElement:
			depth--
			if qualified(tok.Name) == "pre" {
				pre--
			}
		case xml.CharData:
			if pre > 0 {
				for _, l := range strings.SplitAfter(string(tok), "\n") {
					if l != "" {
						line(depth, strconv.Quote(l))
					}
				}
				continue
			}
			if text := strings.Join(strings.FieldsFunc(string(tok), isHTMLSpace), " "); text != "" {
				line(depth, strconv.Quote(text))
			}
		case xml.Directive:
			line(depth, "<!"+strings.ToLower(strings.Join(strings.Fields(string(tok)), " "))+">")
		}
	}
	return b.String(), nil
}

// isHTMLSpace reports whether r is white space to HTML: ASCII space, tab,
// line feed, form feed or carriage return (not a no-break space).
func isHTMLSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\f' || r == '\r'
}

// qualified returns an element's or attribute's name, lower-cased, with its
// prefix ("hx-on:click" stays whole).
func qualified(n xml.Name) string {
	if n.Space != "" {
		return strings.ToLower(n.Space + ":" + n.Local)
	}
	return strings.ToLower(n.Local)
}

// lineDiff shows how got differs from want, line by line: "-" before
// want's lines that got lacks, "+" before got's lines that want lacks,
// with up to three unchanged lines around each change and "…" for the
// unchanged lines left out. It is "" when they are equal.
func lineDiff(want, got string) string {
	a, b := strings.Split(want, "\n"), strings.Split(got, "\n")
	// lcs[i][j] is the length of the longest common subsequence of a[i:]
	// and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type op struct {
		mark byte // ' ', '-' or '+'
		text string
	}
	var ops []op
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			ops = append(ops, op{' ', a[i]})
			i, j = i+1, j+1
		case j == len(b) || (i < len(a) && lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, op{'-', a[i]})
			i++
		default:
			ops = append(ops, op{'+', b[j]})
			j++
		}
	}
	const context = 3
	near := make([]bool, len(ops))
	changed := false
	for k, o := range ops {
		if o.mark == ' ' {
			continue
		}
		changed = true
		for n := max(0, k-context); n <= min(len(ops)-1, k+context); n++ {
			near[n] = true
		}
	}
	if !changed {
		return ""
	}
	var out strings.Builder
	skipped := false
	for k, o := range ops {
		if !near[k] {
			skipped = true
			continue
		}
		if skipped {
			out.WriteString("  …\n")
			skipped = false
		}
		fmt.Fprintf(&out, "%c %s\n", o.mark, o.text)
	}
	if skipped {
		out.WriteString("  …\n")
	}
	return out.String()
}

func TestNormalizeHTML(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, src, want string
	}{
		{
			name: "a page, void elements and valueless attributes",
			src: "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>Data · millrace</title></head>\n" +
				"<body><form><input name=\"to\" required><br><button type=\"submit\" disabled>Go</button></form></body></html>",
			want: `<!doctype html>
<html>
  lang="en"
  <head>
    <meta>
      charset="utf-8"
    <title>
      "Data · millrace"
  <body>
    <form>
      <input>
        name="to"
        required="required"
      <br>
      <button>
        disabled="disabled"
        type="submit"
        "Go"
`,
		},
		{
			name: "white space collapsed, attributes sorted, character references decoded",
			src:  "<p  title='a &amp; b'   class=\"x\">\n  ✓ 5\n\tsucceeded &lt;all&gt;&nbsp;&#34;ok&#34;  </p>\n\n<P>   </P>",
			want: "<p>\n  class=\"x\"\n  title=\"a & b\"\n  \"✓ 5 succeeded <all>\\u00a0\\\"ok\\\"\"\n<p>\n",
		},
		{
			name: "text inside pre kept exactly, a line a line",
			src:  "<pre class=\"log\">run  started\n\n  rows=3 &lt;x&gt;\n</pre>",
			want: "<pre>\n  class=\"log\"\n  \"run  started\\n\"\n  \"\\n\"\n  \"  rows=3 <x>\\n\"\n",
		},
		{
			name: "a JSON data block and a prefixed attribute",
			src:  `<script type="application/json" id="d">{"label":"\u003c/script\u003e"}</script><div hx-on:click="x"></div>`,
			want: "<script>\n  id=\"d\"\n  type=\"application/json\"\n  \"{\\\"label\\\":\\\"\\\\u003c/script\\\\u003e\\\"}\"\n<div>\n  hx-on:click=\"x\"\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := normalizeHTML(tc.src)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("normalizeHTML:\n%s\nwant:\n%s\ndiff:\n%s", got, tc.want, lineDiff(tc.want, got))
			}
		})
	}

	t.Run("layout does not count, content does", func(t *testing.T) {
		t.Parallel()
		norm := func(src string) string {
			t.Helper()
			n, err := normalizeHTML(src)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		a := norm("<ul>\n  <li class=\"a\" id=\"1\">one</li>\n  <li>two</li>\n</ul>")
		if same := norm("<ul><li id=\"1\"  class=\"a\">one</li><li>\n two </li></ul>"); same != a {
			t.Errorf("a change of layout counts:\n%s", lineDiff(a, same))
		}
		for _, other := range []string{
			"<ul><li class=\"a\" id=\"1\">one</li></ul><li>two</li>",   // moved out of the list
			"<ul><li class=\"b\" id=\"1\">one</li><li>two</li></ul>",   // another attribute value
			"<ul><li class=\"a\" id=\"1\">one</li><li>twice</li></ul>", // another text
		} {
			if norm(other) == a {
				t.Errorf("%q normalises like the list it changes", other)
			}
		}
	})

	t.Run("unclosed elements are an error", func(t *testing.T) {
		t.Parallel()
		if got, err := normalizeHTML("<div><p>lost"); err == nil {
			t.Errorf("no error, normalised to:\n%s", got)
		}
	})
}

func TestLineDiff(t *testing.T) {
	t.Parallel()
	lines := func(from, to int) string {
		var b strings.Builder
		for n := from; n <= to; n++ {
			fmt.Fprintf(&b, "%d\n", n)
		}
		return b.String()
	}
	for _, tc := range []struct {
		name, want, got, diff string
	}{
		{"equal", "a\nb\n", "a\nb\n", ""},
		{"a line changed, with context", lines(1, 10), strings.Replace(lines(1, 10), "\n5\n", "\nfive\n", 1),
			"  …\n  2\n  3\n  4\n- 5\n+ five\n  6\n  7\n  8\n  …\n"},
		{"a line added at the end", "a\n", "a\nb\n", "  a\n+ b\n  \n"},
		{"a line removed at the start", "a\nb\n", "b\n", "- a\n  b\n  \n"},
	} {
		if got := lineDiff(tc.want, tc.got); got != tc.diff {
			t.Errorf("%s: lineDiff:\n%s\nwant:\n%s", tc.name, got, tc.diff)
		}
	}
}
