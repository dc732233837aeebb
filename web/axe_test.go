package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// axeSource is axe-core, the accessibility checker, vendored from npm for
// the tests only (testdata/axe, see its VERSION); the binary never embeds it.
var axeSource = sync.OnceValues(func() (string, error) {
	b, err := os.ReadFile(filepath.Join("testdata", "axe", "axe.min.js"))
	return string(b), err
})

// colorSchemes are the values of prefers-color-scheme that every page is
// checked in.
var colorSchemes = []string{"light", "dark"}

// setColorScheme makes the tab's pages see prefers-color-scheme as scheme.
func setColorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	})
}

// axeViolation is what axe-core reports of a rule that a page breaks.
type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  string `json:"target"`
		Summary string `json:"summary"`
	} `json:"nodes"`
}

// axeRun runs axe-core's rules on the page and returns its violations. The
// script is evaluated through DevTools, which the page's
// Content-Security-Policy does not govern, and the page's refreshes
// (htmx polling) are held while it runs, so that it checks one state.
const axeRun = `(async () => {
  if (!window.millraceAxeHold) {
    window.millraceAxeHold = true;
    document.addEventListener("htmx:beforeRequest", e => { if (window.millraceAxeRunning) e.preventDefault(); });
  }
  window.millraceAxeRunning = true;
  try {
    const r = await axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map(v => ({ id: v.id, impact: v.impact || "", help: v.help,
      nodes: v.nodes.map(n => ({ target: n.target.join(" "), summary: n.failureSummary || "" })) }));
  } finally {
    window.millraceAxeRunning = false;
  }
})()`

// auditPage checks the tab's page with axe-core in each colour scheme and
// returns one line per violation and node: the scheme, the page, the
// rule, its impact, the element and what is wrong; it leaves the tab in
// the light scheme.
func auditPage(ctx context.Context, page string) ([]string, error) {
	src, err := axeSource()
	if err != nil {
		return nil, fmt.Errorf("read axe-core: %w", err)
	}
	loaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`typeof axe === "object"`))
	if err != nil {
		return nil, err
	}
	if !loaded {
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](src)); err != nil {
			return nil, fmt.Errorf("inject axe-core: %w", err)
		}
	}
	var lines []string
	for _, scheme := range colorSchemes {
		if err := chromedp.Do(ctx, setColorScheme(scheme)); err != nil {
			return nil, fmt.Errorf("emulate prefers-color-scheme %s: %w", scheme, err)
		}
		matches, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`matchMedia("(prefers-color-scheme: %s)").matches`, scheme)))
		if err != nil || !matches {
			return nil, fmt.Errorf("the page does not see prefers-color-scheme %s (%v)", scheme, err)
		}
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](axeRun, chromedp.EvalAwaitPromise))
		if err != nil {
			return nil, fmt.Errorf("run axe-core (%s): %w", scheme, err)
		}
		var vs []axeViolation
		if err := json.Unmarshal(raw, &vs); err != nil {
			return nil, fmt.Errorf("axe-core's result: %w", err)
		}
		for _, v := range vs {
			for _, n := range v.Nodes {
				lines = append(lines, fmt.Sprintf("[%s] %s: %s (%s) at %s: %s; %s", scheme, page, v.ID, v.Impact, n.Target, v.Help,
					strings.Join(strings.Fields(n.Summary), " ")))
			}
		}
	}
	if err := chromedp.Do(ctx, setColorScheme("light")); err != nil {
		return nil, err
	}
	return lines, nil
}

// axeAuditor checks pages as a browser test visits them and reports every
// violation at the end of the test, all together.
type axeAuditor struct {
	t     *testing.T
	pages []string
	lines []string
}

// newAxeAuditor returns an auditor that fails t, when it ends, with the
// violations of every page checked, and logs the pages it checked.
func newAxeAuditor(t *testing.T) *axeAuditor {
	a := &axeAuditor{t: t}
	t.Cleanup(func() {
		t.Logf("axe-core checked %d pages in the schemes %v: %s", len(a.pages), colorSchemes, strings.Join(a.pages, ", "))
		if len(a.lines) > 0 {
			t.Errorf("axe-core found %d accessibility violations:\n%s", len(a.lines), strings.Join(a.lines, "\n"))
		}
	})
	return a
}

// check audits the tab's page, named page in the report.
func (a *axeAuditor) check(ctx context.Context, page string) error {
	lines, err := auditPage(ctx, page)
	if err != nil {
		return fmt.Errorf("accessibility check of %s: %w", page, err)
	}
	a.pages = append(a.pages, page)
	a.lines = append(a.lines, lines...)
	return nil
}
