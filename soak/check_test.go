package soak_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"math/big"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace"
)

// settle resumes every pipeline and asks, as a person would, for the
// months that failed, went stale or never ran, and for the client data and
// the feature store, until everything is loaded and fresh (3 minutes at
// most).
func settle(t *testing.T, s *system, lg *events, months []millrace.Month, spike millrace.Month) {
	t.Helper()
	ctx := context.Background()
	for _, p := range []string{millrace.LoadSalesData, millrace.LoadClientData, millrace.ProcessData} {
		if code, _ := s.api("POST", "/api/pipelines/"+p+"/resume", nil); code/100 == 2 {
			lg.action("resume")
		}
	}
	conn, err := s.db(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	from, to := months[0].String(), months[len(months)-1].String()
	deadline := time.Now().Add(3 * time.Minute)
	var asked time.Time
	for ; ; time.Sleep(time.Second) {
		var left int
		var what string
		err := conn.QueryRow(ctx, `
			WITH want AS (
				SELECT 'load_sales_data' AS pipeline, to_char(m, 'YYYY-MM') AS partition
				FROM generate_series($1::date, $2::date, interval '1 month') m
				UNION ALL VALUES ('load_client_data', ''), ('process_data', ''))
			SELECT count(*), coalesce(string_agg(w.pipeline || ' ' || w.partition || ' ' || coalesce(p.state, 'missing') ||
			       CASE WHEN p.stale_since IS NOT NULL THEN ' (stale)' ELSE '' END || coalesce(': ' || nullif(p.error, ''), ''), ', ' ORDER BY 1), '')
			FROM want w LEFT JOIN millrace.partitions p USING (pipeline, partition)
			WHERE p.state IS DISTINCT FROM 'succeeded' OR p.stale_since IS NOT NULL`, from+"-01", to+"-01").Scan(&left, &what)
		if err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			t.Logf("settled %s after the faults stopped", time.Since(deadline.Add(-3*time.Minute)).Round(time.Second))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not settled 3 minutes after the faults stopped: %s\n%s", what, unsettled(ctx, conn))
		}
		if time.Since(asked) < 10*time.Second {
			continue
		}
		if !asked.IsZero() {
			t.Logf("settle: %d left: %s", left, what)
		}
		asked = time.Now()
		// The month whose volume check fails first, accepted, so that a
		// backfill does not queue it without the acceptance.
		var spikeFresh bool
		_ = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM millrace.partitions WHERE pipeline = 'load_sales_data' AND partition = $1 AND state = 'succeeded' AND stale_since IS NULL)", spike.String()).Scan(&spikeFresh)
		if !spikeFresh {
			if code, _ := s.api("POST", "/api/pipelines/load_sales_data/runs", map[string]any{"partition": spike.String(), "accept_check": true}); code/100 == 2 {
				lg.action("run")
			}
		}
		for _, only := range []string{"missing,failed", "stale"} {
			if code, _ := s.api("POST", "/api/pipelines/load_sales_data/backfill", map[string]any{"from": from, "to": to, "only": only}); code/100 == 2 {
				lg.action("backfill")
				lg.mu.Lock()
				lg.backfills++
				lg.mu.Unlock()
			}
		}
		for _, p := range []string{millrace.LoadClientData, millrace.ProcessData} {
			var fresh bool
			_ = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM millrace.partitions WHERE pipeline = $1 AND state = 'succeeded' AND stale_since IS NULL)", p).Scan(&fresh)
			if !fresh {
				if code, _ := s.api("POST", "/api/pipelines/"+p+"/runs", map[string]any{}); code/100 == 2 {
					lg.action("run")
				}
			}
		}
	}
}

// unsettled describes, for a settle that failed, the runs the ledger has
// running and the run jobs the queue has not finished.
func unsettled(ctx context.Context, conn *pgx.Conn) string {
	var b strings.Builder
	for _, q := range []string{
		`SELECT 'run ' || id || ' ' || pipeline || ' ' || partition || ' running since ' || started_at || ', job ' || coalesce(job_id::text, '-') FROM millrace.runs WHERE state = 'running' ORDER BY id`,
		`SELECT 'job ' || id || ' ' || state || ' ' || (args->>'pipeline') || ' ' || coalesce(args->>'partition', '') || ' attempt ' || attempt || '/' || max_attempts ||
		        ' by ' || coalesce(array_to_string(attempted_by, ','), '-') || ', attempted at ' || coalesce(attempted_at::text, '-') || ', scheduled at ' || scheduled_at ||
		        coalesce(', last error: ' || (errors[array_upper(errors, 1)]->>'error'), '')
		 FROM millrace.river_job WHERE kind = 'millrace_run' AND state NOT IN ('completed', 'cancelled', 'discarded') ORDER BY id`,
	} {
		rows, err := conn.Query(ctx, q)
		if err != nil {
			fmt.Fprintf(&b, "%v\n", err)
			continue
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			fmt.Fprintf(&b, "%v\n", err)
		}
		for _, l := range lines {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	return b.String()
}

// fileSums returns a sales file's rows and sum of values.
func fileSums(file []byte) (int64, *big.Rat, error) {
	rows, err := csv.NewReader(bytes.NewReader(file)).ReadAll()
	if err != nil {
		return 0, nil, err
	}
	sum := new(big.Rat)
	for _, r := range rows[1:] {
		v, ok := new(big.Rat).SetString(r[1])
		if !ok {
			return 0, nil, fmt.Errorf("value %q", r[1])
		}
		sum.Add(sum, v)
	}
	return int64(len(rows) - 1), sum, nil
}

// checkFinal checks the settled system and returns how many runs it made:
// every month holds exactly its file's rows and sum, monthly_sales is the
// sums of sales, the feature store equals a fresh build, nothing is left
// running, no two attempts of a partition overlapped (in the ledger or in
// the workers' logs), no automatic run was queued while its pipeline was
// paused, nothing ran after a cancel, squatted tables are intact, no
// process exited by itself but as it started, every failure was followed
// by a recovery, and every person's action is in the audit log.
func checkFinal(t *testing.T, s *system, lg *events, files map[string][]byte, months []millrace.Month) int {
	t.Helper()
	ctx := context.Background()
	conn, err := s.db(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, m := range months {
		rows, sum, err := fileSums(files[m.SalesKey()])
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		var got string
		if err := conn.QueryRow(ctx, "SELECT count(*), coalesce(sum(value), 0)::text FROM public.sales WHERE date >= $1 AND date < $2", m.Start(), m.End()).Scan(&n, &got); err != nil {
			t.Fatal(err)
		}
		g, _ := new(big.Rat).SetString(got)
		if n != rows || g == nil || g.Cmp(sum) != 0 {
			lg.violation("%s: %d rows summing to %s in sales, the file %d summing to %s", m, n, got, rows, sum.FloatString(2))
		}
	}
	for name, q := range map[string]string{
		"monthly_sales that are not the sums of sales": `SELECT count(*) FROM (
			(SELECT s.store_idx, date_trunc('month', s.date)::date, sum(s.value) FROM public.sales s GROUP BY 1, 2
			 EXCEPT SELECT store_idx, sale_month, value FROM public.monthly_sales)
			UNION ALL
			(SELECT store_idx, sale_month, value FROM public.monthly_sales
			 EXCEPT SELECT s.store_idx, date_trunc('month', s.date)::date, sum(s.value) FROM public.sales s GROUP BY 1, 2)) x`,
		"rows of feature_store that a fresh build differs on": `WITH fresh AS (
			SELECT p.idx, p.attr_a, p.attr_b, a.scd_a, a.scd_b, l.label FROM public.customer_profiles p
			JOIN (SELECT DISTINCT ON (idx) idx, scd_a, scd_b FROM public.customer_activity ORDER BY idx, valid_from DESC) a ON a.idx = p.idx
			JOIN public.labels l ON l.idx = p.idx)
			SELECT count(*) FROM ((SELECT * FROM fresh EXCEPT SELECT idx, attr_a, attr_b, scd_a, scd_b, label FROM public.feature_store)
			UNION ALL (SELECT idx, attr_a, attr_b, scd_a, scd_b, label FROM public.feature_store EXCEPT SELECT * FROM fresh)) x`,
		"runs still running":                      `SELECT count(*) FROM millrace.runs WHERE state = 'running'`,
		"run jobs still running in the job queue": `SELECT count(*) FROM millrace.river_job WHERE kind = 'millrace_run' AND state = 'running'`,
		"automatic runs queued while their pipeline was paused": `SELECT count(*) FROM millrace.river_job j JOIN millrace.audit a ON a.action = 'pause'
			AND a.target = j.args->>'pipeline' AND j.created_at > a.at + interval '1 second'
			AND j.created_at < coalesce((SELECT min(b.at) FROM millrace.audit b WHERE b.action = 'resume' AND b.target = a.target AND b.at > a.at), now())
			WHERE j.kind = 'millrace_run' AND (j.args->>'trigger' IN ('schedule', 'stale') OR j.args->>'trigger' LIKE 'after:%')`,
	} {
		var n int
		if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n > 0 {
			lg.violation("%d %s", n, name)
		}
	}

	// No two attempts of a partition at once: a run's end is its own
	// record, or for a run its process did not live to close, the death of
	// that process.
	deaths := map[string]time.Time{}
	lg.mu.Lock()
	for _, p := range lg.procs {
		if id := p.id(); id != "" && !p.ended.IsZero() {
			deaths[id] = p.ended
		}
	}
	lg.mu.Unlock()
	rows, err := conn.Query(ctx, `SELECT r.id, r.pipeline, r.partition, r.started_at, r.finished_at, r.error,
		coalesce(j.attempted_by[array_upper(j.attempted_by, 1)], '') FROM millrace.runs r LEFT JOIN millrace.river_job j ON j.id = r.job_id ORDER BY r.started_at`)
	if err != nil {
		t.Fatal(err)
	}
	type span struct {
		id         int64
		start, end time.Time
	}
	byPart := map[string][]span{}
	runs := 0
	for rows.Next() {
		var id int64
		var pipeline, partition, errText, worker string
		var started time.Time
		var finished *time.Time
		if err := rows.Scan(&id, &pipeline, &partition, &started, &finished, &errText, &worker); err != nil {
			t.Fatal(err)
		}
		runs++
		end := time.Now()
		if finished != nil {
			end = *finished
		}
		if d, ok := deaths[worker]; ok && errText == "interrupted: the process running it stopped before it finished" && d.Before(end) {
			end = d
		}
		k := pipeline + " " + partition
		for _, o := range byPart[k] {
			if started.Before(o.end) && o.start.Before(end) {
				lg.violation("%s: run %d (%s to %s) overlaps run %d (%s to %s)", k, id, started.Format(time.StampMilli), end.Format(time.StampMilli), o.id, o.start.Format(time.StampMilli), o.end.Format(time.StampMilli))
			}
		}
		byPart[k] = append(byPart[k], span{id, started, end})
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}

	// No two attempts of a partition at once in what the workers logged:
	// an attempt is open from its "run started" to its end (or its
	// process's death). An attempt that lost its database session (a cut
	// connection, PostgreSQL restarted) lost its run lock with it and may
	// log on for a moment while another takes the partition; it can commit
	// nothing, so it must not have succeeded.
	lg.mu.Lock()
	procs := slices.Clone(lg.procs)
	lg.mu.Unlock()
	logged := map[string][]loggedAttempt{}
	for _, p := range procs {
		if !p.running() && !p.stopped.Load() {
			// Only as it starts, and only because PostgreSQL was down.
			b, _ := os.ReadFile(p.log)
			if p.up() || !unreachable.Match(b) {
				lg.violation("serve %s (slot %d) exited by itself at %s: %s", p.id(), p.slot, p.ended.Format(time.StampMilli), b[max(0, len(b)-2000):])
			}
		}
		for _, a := range attemptsLogged(p) {
			logged[a.partition] = append(logged[a.partition], a)
		}
	}
	lost := 0
	for part, as := range logged {
		sort.Slice(as, func(i, j int) bool { return as[i].start.Before(as[j].start) })
		for i, a := range as {
			for _, b := range as[i+1:] {
				if !b.start.Before(a.end) {
					break
				}
				var state string
				_ = conn.QueryRow(ctx, "SELECT state FROM millrace.runs WHERE id = $1", a.run).Scan(&state)
				if state == string(millrace.StateSucceeded) {
					lg.violation("%s: the workers logged run %d (%s to %s, %s) and run %d (from %s) at once", part, a.run,
						a.start.Format(time.StampMilli), a.end.Format(time.StampMilli), state, b.run, b.start.Format(time.StampMilli))
				} else {
					lost++
				}
			}
		}
	}
	t.Logf("attempts logged at once: %d, each by an attempt that had lost its session and did not succeed", lost)

	// Every failure (a failed or late alert) is followed by one recovered
	// alert, the partitions being all loaded now, and is told once.
	alerts, err := conn.Query(ctx, `SELECT pipeline, partition, event FROM millrace.alerts WHERE event IN ('failed', 'late', 'recovered') ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	open := map[string]string{}
	for alerts.Next() {
		var pipeline, partition, event string
		if err := alerts.Scan(&pipeline, &partition, &event); err != nil {
			t.Fatal(err)
		}
		k := pipeline + " " + partition
		switch {
		case event == "recovered" && open[k] == "":
			lg.violation("%s: a recovered alert without a failure before it", k)
		case event == "failed" && open[k] == "failed":
			lg.violation("%s: a second failed alert in one failure", k)
		}
		open[k] = event
		if event == "recovered" {
			open[k] = ""
		}
	}
	for k, o := range open {
		if o != "" {
			lg.violation("%s: %s, and no recovered alert though it is loaded", k, o)
		}
	}

	// Every cancel ended as asked: no attempt started after it by a job
	// queued before it, of the partition cancelled; no attempt of a
	// cancelled backfill after it, but the retries of a month it let run
	// on.
	for name, q := range map[string]string{
		"attempts started after a cancel of their partition, by a job queued before it": `SELECT count(*) FROM millrace.audit a
			JOIN millrace.runs r ON r.pipeline || ' ' || r.partition = a.target AND r.started_at > a.at + interval '1 second'
			JOIN millrace.river_job j ON j.id = r.job_id AND j.created_at < a.at
			WHERE a.action = 'cancel'`,
		"attempts of a cancelled backfill started after its cancel, of a month it cancelled, stopped or had not started": `SELECT count(*) FROM millrace.backfills b
			JOIN millrace.audit a ON a.action = 'cancel_backfill' AND a.target = 'backfill ' || b.id
			JOIN millrace.runs r ON r.backfill_id = b.id AND r.started_at > b.cancelled_at + interval '1 second'
			WHERE r.partition IN (SELECT v #>> '{}' FROM jsonb_path_query(a.detail, '$.cancelled[*]') v
			                      UNION ALL SELECT v #>> '{}' FROM jsonb_path_query(a.detail, '$.stopping[*]') v)
			   OR NOT EXISTS (SELECT 1 FROM millrace.runs r0 WHERE r0.backfill_id = b.id AND r0.partition = r.partition AND r0.started_at < b.cancelled_at)`,
	} {
		var n int
		if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if n > 0 {
			lg.violation("%d %s", n, name)
		}
	}

	// The tables a database user squatted are its own still, as it left
	// them.
	lg.mu.Lock()
	squatted := slices.Clone(lg.squatted)
	lg.mu.Unlock()
	for _, name := range squatted {
		var owner, mine string
		err := conn.QueryRow(ctx, "SELECT tableowner FROM pg_tables WHERE schemaname = 'public' AND tablename = $1", name).Scan(&owner)
		if err == nil {
			err = conn.QueryRow(ctx, "SELECT string_agg(mine, ',') FROM public."+pgx.Identifier{name}.Sanitize()).Scan(&mine)
		}
		if err != nil || owner != "mle_user" || mine != "mine" {
			lg.violation("mle_user's table public.%s: owner %q, rows %q, %v", name, owner, mine, err)
		}
	}

	// Every action the soak's person made is in the audit log.
	lg.mu.Lock()
	actions := lg.actions
	lg.mu.Unlock()
	for action, n := range actions {
		var logged int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM millrace.audit WHERE actor = 'token:soak' AND action = $1", action).Scan(&logged); err != nil {
			t.Fatal(err)
		}
		if logged < n {
			lg.violation("%d %s actions answered 2xx, %d in the audit log", n, action, logged)
		}
	}
	return runs
}

// unreachable matches the last words of a serve that could not reach the
// database as it started.
var unreachable = regexp.MustCompile(`(?m)^millrace: (nothing listens on|PostgreSQL on \S+ is starting or stopping|cannot connect to PostgreSQL on)`)

// loggedAttempt is an attempt as a worker logged it.
type loggedAttempt struct {
	partition  string // pipeline and partition
	run        int64
	start, end time.Time
}

// attemptLine matches a worker's log line of an attempt's start or end.
var attemptLine = regexp.MustCompile(`^time=(\S+) level=\w+ msg="run (started|succeeded|failed|cancelled)" pipeline=(\S+) partition=(\S+) run_id=(\d+)`)

// attemptsLogged returns the attempts a process logged; one it did not
// log the end of ends with the process (or now, if it still runs).
func attemptsLogged(p *proc) []loggedAttempt {
	f, err := os.Open(p.log)
	if err != nil {
		return nil
	}
	defer f.Close()
	end := time.Now()
	if !p.running() {
		end = p.ended
	}
	open := map[int64]*loggedAttempt{}
	var out []loggedAttempt
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		m := attemptLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			continue
		}
		id, _ := strconv.ParseInt(m[5], 10, 64)
		if m[2] == "started" {
			open[id] = &loggedAttempt{partition: m[3] + " " + strings.Trim(m[4], `"`), run: id, start: at, end: end}
			continue
		}
		if a, ok := open[id]; ok {
			a.end = at
			out = append(out, *a)
			delete(open, id)
		}
	}
	for _, a := range open {
		out = append(out, *a)
	}
	return out
}

// checkResources checks, for each process that lived 30 s or more, that
// its goroutines, open files and memory did not grow beyond a slack from
// its first sample to its last, and returns the figures for the log: for
// each of those processes, how long it lived and each figure first and
// last.
func checkResources(lg *events) []string {
	lg.mu.Lock()
	procs := append([]*proc(nil), lg.procs...)
	lg.mu.Unlock()
	var figures []string
	for _, p := range procs {
		if len(p.samples) < 2 || p.samples[len(p.samples)-1].at.Sub(p.samples[0].at) < 30*time.Second {
			continue
		}
		a, b := p.samples[0], p.samples[len(p.samples)-1]
		figures = append(figures, fmt.Sprintf("%s, %s sampled: goroutines %.0f -> %.0f, open files %.0f -> %.0f, RSS %.0f MB -> %.0f MB",
			p.id(), b.at.Sub(a.at).Round(time.Second), a.goroutines, b.goroutines, a.fds, b.fds, a.rssM, b.rssM))
		switch {
		case b.goroutines > a.goroutines+100:
			lg.violation("serve %s: goroutines grew from %.0f to %.0f", p.id(), a.goroutines, b.goroutines)
		case b.fds > a.fds+50:
			lg.violation("serve %s: open files grew from %.0f to %.0f", p.id(), a.fds, b.fds)
		case b.rssM > 2*a.rssM+64:
			lg.violation("serve %s: resident memory grew from %.0f MB to %.0f MB", p.id(), a.rssM, b.rssM)
		}
	}
	return figures
}
