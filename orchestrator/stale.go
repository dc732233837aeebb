package orchestrator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/warehouse"
)

// SourceCheck says what a check of the sources found.
type SourceCheck struct {
	// Objects is how many objects the source listed.
	Objects int `json:"objects"`
	// Stale lists "pipeline partition: why" of each partition marked stale.
	Stale []string `json:"stale"`
	// Queued lists the stale partitions queued again (ReloadStale).
	Queued []string `json:"queued"`
}

// CheckSources lists the source (only the prefixes the served data was
// loaded from) and marks stale each succeeded
// partition whose served data was loaded from an object that changed or
// disappeared since: a different ETag or size; for a source without
// ETags (a directory), a different size, or a different modification time
// with different content. Each is marked once, with a stale alert; with
// ReloadStale set they are queued again. One check runs at a time.
func (o *Orchestrator) CheckSources(ctx context.Context) (SourceCheck, error) {
	var res SourceCheck
	lister, ok := o.cfg.Source.(millrace.Lister)
	if !ok {
		return res, fmt.Errorf("check sources: source %v cannot list its objects", o.cfg.Source)
	}
	var names []string
	for _, p := range o.set.List() {
		names = append(names, p.Name)
	}
	// What the served data was loaded from, then the source's listing of
	// just those keys' prefixes, with no transaction open during either
	// network round; MarkStale marks a month only if the success that read
	// the old object still serves it.
	var served []ledger.Served
	err := pgx.BeginTxFunc(ctx, o.w.Pool(), pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		served, err = ledger.ServedSources(ctx, tx, names)
		return err
	})
	if err != nil {
		return res, fmt.Errorf("check sources: %w", err)
	}
	now := map[string]millrace.ObjectInfo{}
	for _, prefix := range listPrefixes(served) {
		objects, err := lister.List(ctx, prefix)
		if err != nil {
			return res, fmt.Errorf("check sources: %w", err)
		}
		res.Objects += len(objects)
		for _, obj := range objects {
			now[obj.Key] = obj
		}
	}
	type change struct {
		served ledger.Served
		why    string
	}
	var changes []change
	for _, s := range served {
		for _, read := range s.Sources {
			why, err := o.changed(ctx, read, now)
			if err != nil {
				return res, fmt.Errorf("check sources: %w", err)
			}
			if why != "" {
				changes = append(changes, change{s, why})
				break
			}
		}
	}
	if len(changes) == 0 {
		return res, nil
	}
	err = pgx.BeginFunc(ctx, o.w.Pool(), func(tx pgx.Tx) error {
		if err := warehouse.Lock(ctx, tx, warehouse.LockSourceCheck); err != nil {
			return err
		}
		stale := map[string][]string{}
		for _, c := range changes {
			marked, err := ledger.MarkStale(ctx, tx, c.served, c.why)
			if err != nil {
				return err
			}
			if marked {
				res.Stale = append(res.Stale, c.served.Pipeline+" "+millrace.PartitionLabel(c.served.Partition)+": "+c.why)
				stale[c.served.Pipeline] = append(stale[c.served.Pipeline], c.served.Partition)
			}
		}
		if !o.cfg.ReloadStale {
			return nil
		}
		for pipeline, parts := range stale {
			q, err := o.enqueueTx(ctx, tx, pipeline, parts, millrace.Request{Trigger: millrace.TriggerStale})
			if err != nil {
				return err
			}
			for _, e := range q {
				if e.Queued {
					res.Queued = append(res.Queued, pipeline+" "+millrace.PartitionLabel(e.Partition))
				}
			}
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("check sources: %w", err)
	}
	if len(res.Stale) > 0 {
		o.cfg.Logger.Warn("sources changed since their data was loaded", "stale", len(res.Stale), "first", res.Stale[0], "queued", len(res.Queued))
	}
	return res, nil
}

// listPrefixes returns the prefixes to list to see every object the
// served data was loaded from: the top folder of a nested key
// ("sales/"), the key itself at the top ("stores.csv"). A few requests,
// not one per month.
func listPrefixes(served []ledger.Served) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range served {
		for _, read := range s.Sources {
			p := read.Key
			if i := strings.IndexByte(p, '/'); i >= 0 {
				p = p[:i+1]
			}
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	sort.Strings(out)
	return out
}

// changed says how an object changed since a run read it ("" if it did
// not), given what the source lists now.
func (o *Orchestrator) changed(ctx context.Context, read millrace.SourceRead, now map[string]millrace.ObjectInfo) (string, error) {
	cur, ok := now[read.Key]
	switch {
	case !ok:
		return read.Key + " disappeared from the source", nil
	case read.ETag != "" && cur.ETag != "" && read.ETag != cur.ETag:
		return fmt.Sprintf("%s changed: ETag %s → %s, %d → %d bytes", read.Key, read.ETag, cur.ETag, read.Size, cur.Size), nil
	case read.Size != cur.Size:
		return fmt.Sprintf("%s changed: %d → %d bytes", read.Key, read.Size, cur.Size), nil
	case read.ETag != "" && cur.ETag != "":
		return "", nil
	case read.ModTime.IsZero() || cur.ModTime.Truncate(time.Microsecond).Equal(read.ModTime.Truncate(time.Microsecond)):
		return "", nil
	case read.SHA256 == "":
		return fmt.Sprintf("%s changed: modified %s", read.Key, cur.ModTime.UTC().Format(time.RFC3339)), nil
	}
	// Written again, the same size: compare the content.
	sum, err := o.hash(ctx, read.Key)
	if err != nil {
		return "", err
	}
	if sum == read.SHA256 {
		return "", nil
	}
	return fmt.Sprintf("%s changed: new content, the same size, modified %s", read.Key, cur.ModTime.UTC().Format(time.RFC3339)), nil
}

// hash returns the hex SHA-256 of an object of the source.
func (o *Orchestrator) hash(ctx context.Context, key string) (string, error) {
	obj, err := o.cfg.Source.Open(ctx, key)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", key, err)
	}
	defer obj.Close()
	h := sha256.New()
	if _, err := io.Copy(h, obj); err != nil {
		return "", fmt.Errorf("read %s: %w", key, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// checkSourcesEvery checks the sources at once and then every
// SourceCheckInterval until ctx ends; it runs in passes' WaitGroup.
func (o *Orchestrator) checkSourcesEvery(ctx context.Context) {
	defer o.passes.Done()
	tick := time.NewTicker(o.cfg.SourceCheckInterval)
	defer tick.Stop()
	for {
		if _, err := o.CheckSources(ctx); err != nil && ctx.Err() == nil {
			o.cfg.Logger.Error("check of the sources failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
