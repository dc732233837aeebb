package orchestrator_test

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/audit"
	"github.com/millrace/millrace/internal/testfolder"
	"github.com/millrace/millrace/orchestrator"
	"github.com/millrace/millrace/pipelines"
)

// withStoreIDs returns the built-in files and one more transform,
// store_ids, reading stores.
func withStoreIDs(t *testing.T) fstest.MapFS {
	t.Helper()
	m, err := testfolder.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	m["store_ids.yaml"] = &fstest.MapFile{Data: []byte(`apiVersion: millrace/v1
kind: Transform
name: store_ids
schedule: after_inputs
tables:
  store_ids:
    sql: store_ids.sql
    columns:
      idx: integer
`)}
	m["store_ids.sql"] = &fstest.MapFile{Data: []byte("SELECT idx FROM public.stores\n")}
	m["inputs.lock"].Data = append(m["inputs.lock"].Data, "store_ids/store_ids: [stores]\n"...)
	return m
}

// TestServeFollowsAppliedRevision: a serve process (an orchestrator with
// workers and scheduler) runs a revision applied after it started, within
// seconds, with no restart: the new transform follows its input, and its
// run records the revision it ran.
func TestServeFollowsAppliedRevision(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.orchestrator(t, b.src, true, nil)
	f, problems := pipelines.ReadFolder(withStoreIDs(t))
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	plan, err := orchestrator.Apply(b.ctx, b.w.Pool(), orchestrator.ApplyRequest{Folder: f, Source: "test", By: audit.Actor{Name: "ada", Address: "cli"}})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Revision.Number != 1 || !strings.Contains(strings.Join(plan.NewTables, ","), "store_ids") {
		t.Fatalf("plan = %+v, want revision 1 with the new table store_ids", plan)
	}
	waitFor(t, "the process to run revision 1", func() bool { return o.Pipelines().Revision().Number == 1 })
	if _, err := o.Pipelines().Get("store_ids"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "load_client_data, then store_ids after it", func() bool {
		return strings.Join(b.states(t, "store_ids"), ",") == "="+string(millrace.StateSucceeded)
	})
	var revision int64
	var definition string
	if err := b.conn.QueryRow(b.ctx, `SELECT revision, definition FROM millrace.runs WHERE pipeline = 'store_ids'`).Scan(&revision, &definition); err != nil {
		t.Fatal(err)
	}
	p, _ := o.Pipelines().Get("store_ids")
	if revision != 1 || definition != p.Hash {
		t.Errorf("store_ids' run recorded revision %d, definition %s; want 1, %s", revision, definition, p.Hash)
	}
	var action, target string
	if err := b.conn.QueryRow(b.ctx, `SELECT action, target FROM millrace.audit WHERE actor = 'ada'`).Scan(&action, &target); err != nil || action != audit.ActionApply || target != "revision 1" {
		t.Errorf("audit: %s %s (%v), want %s revision 1", action, target, err, audit.ActionApply)
	}
}
