package orchestrator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/audit"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/pipelines"
)

// ApplyRequest is a folder of pipelines to apply to the installation.
type ApplyRequest struct {
	// Folder is the folder read (pipelines.ReadFolder), without problems.
	Folder *pipelines.Folder
	// Source names it: its path, or pipelines.SourceBuiltin.
	Source string
	// Retire names the pipelines of the newest revision that the folder
	// leaves out on purpose: they stop, their tables and history stay.
	Retire []string
	// DryRun computes the plan and changes nothing.
	DryRun bool
	By     audit.Actor
}

// Change is what applying does to one pipeline.
type Change struct {
	Pipeline string `json:"pipeline"`
	// What is "new", "changed", "description" (only descriptions
	// changed), "unchanged" or "retired".
	What string `json:"change"`
	// Formerly is the name whose history the pipeline takes, if renamed.
	Formerly string `json:"formerly,omitempty"`
	// Stale are the partitions whose data becomes stale ("definition
	// changed").
	Stale []string `json:"stale,omitempty"`
}

// ApplyPlan says what applying a folder does, or did.
type ApplyPlan struct {
	// Revision is the revision stored (its number is the one it will get
	// on a dry run), without its files.
	Revision pipelines.Revision `json:"revision"`
	// Previous is the revision it follows, 0 for none.
	Previous int64 `json:"previous"`
	// Unchanged is set when the folder is the newest revision already:
	// nothing is stored.
	Unchanged bool     `json:"unchanged"`
	Changes   []Change `json:"changes"`
	// NewTables are the tables no revision published before; Kept those
	// the newest revision published and this one does not (never dropped).
	NewTables []string `json:"new_tables,omitempty"`
	Kept      []string `json:"kept_tables,omitempty"`
	DryRun    bool     `json:"dry_run"`
}

// Apply checks req's folder through the database of pool (admin) and
// stores it as the installation's newest revision, in one transaction:
// the ledger's history of a renamed pipeline (formerly:) moves to its new
// name, the served partitions of a changed pipeline become stale, the new
// tables are reserved, and the audit log records who applied what. A
// pipeline of the newest revision missing from the folder is refused
// unless req.Retire names it. Every serve process picks the revision up
// (followRevisions). A folder equal to the newest revision stores
// nothing.
func Apply(ctx context.Context, pool *pgxpool.Pool, req ApplyRequest) (ApplyPlan, error) {
	f := req.Folder
	problems, _, err := f.CheckDatabase(ctx, pool)
	if err != nil {
		return ApplyPlan{}, err
	}
	if len(problems) > 0 {
		return ApplyPlan{}, millrace.Permanent(fmt.Errorf("%s does not check through the database:\n%w", req.Source, problems))
	}
	rev := pipelines.Revision{Hash: f.Hash(), Source: req.Source, AppliedBy: req.By.Name, Files: f.Files()}
	list := f.Compile()
	plan := ApplyPlan{DryRun: req.DryRun}
	err = retryDeadlock(ctx, func() error {
		plan = ApplyPlan{DryRun: req.DryRun}
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			// One apply at a time; processes reading revisions are not held.
			if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '10s'; LOCK TABLE millrace.definitions IN SHARE ROW EXCLUSIVE MODE"); err != nil {
				return fmt.Errorf("lock the revisions of the pipelines: %w", err)
			}
			prev, err := pipelines.LatestRevision(ctx, tx)
			switch {
			case errors.Is(err, pipelines.ErrNoRevision):
				prev = pipelines.Builtin()
			case err != nil:
				return err
			}
			plan.Previous = prev.Number
			var before []pipelines.Pipeline
			if pf, problems := pipelines.ReadFolder(prev.FS()); len(problems) == 0 {
				before = pf.Compile()
			}
			if err := plan.compare(before, list, req.Retire); err != nil {
				return err
			}
			if prev.Number > 0 && prev.Hash == rev.Hash && len(req.Retire) == 0 {
				plan.Unchanged, plan.Revision = true, prev
				plan.Revision.Files = nil
				return nil
			}
			if req.DryRun {
				rev.Number = prev.Number + 1
			} else {
				if rev, err = pipelines.StoreRevision(ctx, tx, rev, list, req.Retire); err != nil {
					return err
				}
			}
			for i, c := range plan.Changes {
				if c.Formerly != "" && !req.DryRun {
					if err := ledger.RenamePipeline(ctx, tx, c.Formerly, c.Pipeline); err != nil {
						return err
					}
				}
				if c.What != "changed" && c.What != "new" {
					continue
				}
				name := c.Pipeline
				if req.DryRun && c.Formerly != "" {
					name = c.Formerly
				}
				p := list[slices.IndexFunc(list, func(p pipelines.Pipeline) bool { return p.Name == c.Pipeline })]
				if plan.Changes[i].Stale, err = ledger.MarkDefinitionStale(ctx, tx, name, p.Hash, rev.Number, req.DryRun); err != nil {
					return err
				}
			}
			plan.Revision = rev
			plan.Revision.Files = nil
			if req.DryRun {
				return nil
			}
			// The new tables only: the others were reserved by the revision
			// that published them first, and runs may be publishing them now.
			if len(plan.NewTables) > 0 {
				set, problems := pipelines.NewFromRevision(rev, nil, pipelines.Config{})
				if len(problems) > 0 {
					return problems
				}
				taken, err := set.ReserveTx(ctx, tx, plan.NewTables...)
				if err != nil {
					return err
				}
				if len(taken) > 0 {
					return millrace.Permanent(fmt.Errorf("%s: another object has the name already (a database user's?): rename it, or the table in the folder", millrace.Words(taken, "and")))
				}
			}
			return audit.Record(ctx, tx, req.By, audit.ActionApply, fmt.Sprintf("revision %d", rev.Number),
				map[string]any{"sha256": rev.Hash, "source": rev.Source, "changes": plan.Changes, "retired": req.Retire, "new_tables": plan.NewTables})
		})
	})
	if err != nil {
		return ApplyPlan{}, fmt.Errorf("apply %s: %w", req.Source, err)
	}
	return plan, nil
}

// compare fills the plan's changes and tables from the pipelines before
// and after, refusing a pipeline left out and not retired.
func (plan *ApplyPlan) compare(before, after []pipelines.Pipeline, retire []string) error {
	old := map[string]pipelines.Pipeline{}
	published := map[string]bool{}
	for _, p := range before {
		old[p.Name] = p
		for _, t := range p.Tables {
			published[t] = true
		}
	}
	now := map[string]bool{}
	taken := map[string]bool{}
	for _, p := range after {
		c := Change{Pipeline: p.Name, What: "new"}
		q, ok := old[p.Name]
		if !ok {
			for _, former := range p.Formerly {
				if fq, found := old[former]; found {
					q, ok, c.Formerly = fq, true, former
					break
				}
			}
		}
		if ok {
			taken[q.Name] = true
			if reshaped := pipelines.Reshaped(q, p); len(reshaped) > 0 {
				return millrace.Permanent(fmt.Errorf("%s: the columns, key or partition of %s change; a table whose months are replaced one at a time keeps its shape (reshaping it with its months is not supported yet): publish a new table under another name, or put the change back",
					p.Name, millrace.Words(reshaped, "and")))
			}
			switch {
			case q.Hash != p.Hash:
				c.What = "changed"
			case !slices.EqualFunc(q.Definition, p.Definition, func(a, b pipelines.File) bool { return a == b }):
				c.What = "description"
			default:
				c.What = "unchanged"
			}
		}
		plan.Changes = append(plan.Changes, c)
		for _, t := range p.Tables {
			now[t] = true
			if !published[t] {
				plan.NewTables = append(plan.NewTables, t)
			}
		}
	}
	var missing []string
	for _, p := range before {
		switch {
		case taken[p.Name]:
		case slices.Contains(retire, p.Name):
			plan.Changes = append(plan.Changes, Change{Pipeline: p.Name, What: "retired"})
		default:
			missing = append(missing, p.Name)
		}
		for _, t := range p.Tables {
			if !now[t] {
				plan.Kept = append(plan.Kept, t)
			}
		}
	}
	if len(missing) > 0 {
		return millrace.Permanent(fmt.Errorf("the folder leaves out %s of the newest revision: to stop it (its tables and history stay), apply with --retire %s; to rename it, add `formerly: [%s]` to its new file",
			millrace.Words(missing, "and"), missing[0], missing[0]))
	}
	for _, r := range retire {
		if _, ok := old[r]; !ok || slices.ContainsFunc(after, func(p pipelines.Pipeline) bool { return p.Name == r }) {
			return millrace.Permanent(fmt.Errorf("--retire %s: the newest revision has no pipeline %s that the folder leaves out", r, r))
		}
	}
	return nil
}

// followEvery is how often a serve process looks for a newer revision of
// the pipelines.
const followEvery = 5 * time.Second

// followRevisions makes the orchestrator's pipelines those of the newest
// revision applied, looking every followEvery until ctx ends: every serve
// process runs what the last `millrace pipelines apply` stored. A revision
// that does not compile here (applied by another version of millrace) is
// logged and the pipelines stay as they are.
func (o *Orchestrator) followRevisions(ctx context.Context) {
	defer o.passes.Done()
	t := time.NewTicker(followEvery)
	defer t.Stop()
	refused := int64(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := pipelines.LatestRevisionNumber(ctx, o.w.Pool())
		if err != nil || n <= o.set.Revision().Number || n == refused {
			continue
		}
		rev, err := pipelines.ReadRevision(ctx, o.w.Pool(), n)
		if err != nil {
			o.cfg.Logger.Error("read the newest revision of the pipelines", "revision", n, "err", err)
			continue
		}
		if problems := o.set.Update(rev); len(problems) > 0 {
			refused = n
			o.cfg.Logger.Error("the newest revision of the pipelines does not check here: running the one before", "revision", n, "running", o.set.Revision().Number, "problems", problems.Error())
			continue
		}
		o.cfg.Logger.Info("running a new revision of the pipelines", "revision", n, "applied_by", rev.AppliedBy, "source", rev.Source)
		o.passNow(ctx)
	}
}
