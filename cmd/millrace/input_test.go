package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/warehouse"
)

// TestHelpRedactsDatabaseURL: --help shows MILLRACE_DATABASE_URL, which
// becomes the flag's default, without its password, on every command.
func TestHelpRedactsDatabaseURL(t *testing.T) {
	t.Parallel()
	c := &cli{t: t, now: time.Now(), env: map[string]string{
		"MILLRACE_DATABASE_URL": "postgres://admin:s3cret-pw@db.internal:5432/companydata?sslmode=require",
		"MILLRACE_UI_PASSWORD":  "ui-s3cret",
	}}
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"run", "--help"}} {
		out := c.ok(args...)
		if strings.Contains(out, "s3cret") {
			t.Errorf("millrace %s shows a password:\n%s", strings.Join(args, " "), out)
		}
		if want := "postgres://admin:xxxxx@db.internal:5432/companydata?sslmode=require"; !strings.Contains(out, want) {
			t.Errorf("millrace %s lacks the redacted URL %s:\n%s", strings.Join(args, " "), want, out)
		}
	}
}

// TestMonthRangeCLI: run and backfill (and its dry run) refuse months
// before MILLRACE_SALES_START and absurd years, naming the start, as
// permanent errors, and a backfill of more than 600 months.
func TestMonthRangeCLI(t *testing.T) {
	t.Parallel()
	c := &cli{t: t, now: time.Date(2020, 3, 15, 0, 0, 0, 0, time.UTC), env: map[string]string{
		"MILLRACE_SOURCE":    t.TempDir(),
		"MILLRACE_LOG_LEVEL": "warn",
	}}
	refused := func(want string, args ...string) {
		t.Helper()
		_, _, err := c.run(args...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("millrace %s: %v, want an error containing %q", strings.Join(args, " "), err, want)
		} else if !millrace.IsPermanent(err) {
			t.Errorf("millrace %s: %v is not permanent", strings.Join(args, " "), err)
		}
	}
	// The start of the schedule is the installation's: read in its database.
	c.env["MILLRACE_DATABASE_URL"] = dbtest.NewSetUpDatabase(t)
	const before = "month 2019-12 is before the start of the sales schedule, 2020-01 (MILLRACE_SALES_START)"
	refused(before, "run", "load_sales_data", "--partition", "2019-12")
	refused(`month "0000-01": the year must be from 1900 to 9999`, "run", "load_sales_data", "--partition", "0000-01")
	refused(before, "backfill", "load_sales_data", "--from", "2019-12", "--to", "2020-01", "--dry-run")
	refused(before, "backfill", "load_sales_data", "--from", "2019-12", "--to", "2020-01")
	refused(`month "0001-01"`, "backfill", "load_sales_data", "--from", "0001-01", "--dry-run")
	c.env["MILLRACE_SALES_START"] = "1900-01"
	refused("1900-01..2020-02 is 1442 months: a backfill covers 600 at most", "backfill", "load_sales_data", "--dry-run")
	if out := c.ok("backfill", "load_sales_data", "--from", "1970-03", "--dry-run"); !strings.Contains(out, "would run 600 of 600 months") {
		t.Errorf("a backfill of 600 months: %s", out)
	}
}

// TestWarnDefaultCredentials: with the set-up's default passwords and the
// UI password admin under another user name, each default credential gets
// its warning.
func TestWarnDefaultCredentials(t *testing.T) {
	t.Parallel()
	url := dbtest.NewSetUpDatabase(t)
	var logs bytes.Buffer
	m := &Main{logger: slog.New(slog.NewTextHandler(&logs, nil))}
	m.config.UIUser, m.config.UIPassword = "alice", "admin"
	w, err := warehouse.Open(t.Context(), url, m.logger)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	m.warnDefaultCredentials(t.Context(), w)
	out := logs.String()
	for _, want := range []string{
		"the web UI password is the default, admin",
		"user=admin",
		"user=ds_user", "MILLRACE_DS_USER_PASSWORD",
		"user=mle_user", "MILLRACE_MLE_USER_PASSWORD",
		"user=analytics", "MILLRACE_ANALYTICS_PASSWORD",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the warnings lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "cannot check") {
		t.Errorf("the database check failed:\n%s", out)
	}

	logs.Reset()
	m.config.UIPassword = "a long one"
	m.warnDefaultCredentials(t.Context(), w)
	if strings.Contains(logs.String(), "web UI") {
		t.Errorf("a UI password that is not the default: %s", logs.String())
	}
}

// TestTypedSettings checks that numeric and duration settings are refused,
// with the name of the flag or variable, when they are not numbers or
// durations, or not above zero.
func TestTypedSettings(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{args: []string{"run", "process_data", "--max-attempts", "lots"}, want: `invalid argument "lots" for "--max-attempts" flag`},
		{args: []string{"run", "process_data", "--retry-backoff", "30"}, want: `invalid argument "30" for "--retry-backoff" flag`},
		{env: map[string]string{"MILLRACE_RUN_TIMEOUT": "forever"}, args: []string{"run", "process_data"}, want: `MILLRACE_RUN_TIMEOUT="forever": want a duration`},
		{env: map[string]string{"MILLRACE_MAX_CONCURRENT_RUNS": "two"}, args: []string{"run", "process_data"}, want: `MILLRACE_MAX_CONCURRENT_RUNS="two": want a whole number`},
		{args: []string{"run", "process_data", "--max-attempts", "0"}, want: "MILLRACE_MAX_ATTEMPTS (--max-attempts) = 0: want a whole number of at least 1"},
		{args: []string{"run", "process_data", "--source-idle-timeout", "-1s"}, want: "MILLRACE_SOURCE_IDLE_TIMEOUT (--source-idle-timeout) = -1s: want a positive duration"},
	} {
		env := map[string]string{"MILLRACE_DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "MILLRACE_SOURCE": t.TempDir()}
		for k, v := range tt.env {
			env[k] = v
		}
		c := &cli{t: t, now: time.Now(), env: env}
		if _, _, err := c.run(tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("millrace %v with %v = %v, want an error containing %q", tt.args, tt.env, err, tt.want)
		}
	}
}
