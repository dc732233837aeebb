package main

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/millrace/millrace/internal/dbtest"
)

// TestDatabaseErrors gives every command that opens the database a URL
// that cannot work, in each of the ways a new user gets it wrong, against
// a real PostgreSQL: each gets one line that says what is wrong and what to
// do, never the password, and nothing about what it is not.
func TestDatabaseErrors(t *testing.T) {
	t.Parallel()
	setUp := dbtest.NewSetUpDatabase(t)
	fresh := dbtest.NewDatabase(t)
	// The URLs as a user writes them: without sslmode, so that pgx tries
	// TLS first, as it does by default.
	u, err := url.Parse(setUp)
	if err != nil {
		t.Fatal(err)
	}
	hostPort, db := u.Host, strings.TrimPrefix(u.Path, "/")
	f, err := url.Parse(fresh)
	if err != nil {
		t.Fatal(err)
	}
	freshDB := strings.TrimPrefix(f.Path, "/")
	at := func(user, host, database string) string { return "postgres://" + user + "@" + host + "/" + database }
	const secret = "s3cretpw"

	setupToo := []string{"db", "setup"}
	cases := []struct {
		name, url string
		// flag passes the URL as --database-url instead of the variable.
		flag bool
		want string
		// orElse is another acceptable start of the message.
		orElse string
		// setup also runs `db setup`, which must fail the same way.
		setup bool
	}{
		{name: "wrong password", url: at("admin:"+secret, hostPort, db), setup: true,
			want: "PostgreSQL on " + hostPort + " refused the password of user admin (a wrong password, or no such user): put the right password in MILLRACE_DATABASE_URL"},
		{name: "wrong password, by flag", url: at("admin:"+secret, hostPort, db), flag: true,
			want: "PostgreSQL on " + hostPort + " refused the password of user admin (a wrong password, or no such user): put the right password in --database-url"},
		{name: "missing password", url: at("admin", hostPort, db), setup: true,
			want: "MILLRACE_DATABASE_URL gives no password for user admin, and PostgreSQL on " + hostPort + " asks for one: write it as postgres://admin:PASSWORD@" + hostPort + "/" + db},
		{name: "unparsable URL", url: "postgres://admin:" + secret + "@127.0.0.1:notaport/companydata", setup: true,
			want: "MILLRACE_DATABASE_URL is not a PostgreSQL URL (cannot parse `postgres://admin:xxxxx@127.0.0.1:notaport/companydata`: invalid port): write it as postgres://USER:PASSWORD@HOST:5432/companydata"},
		{name: "not a URL", url: "postgres//admin:" + secret + "@127.0.0.1:5432/companydata", setup: true,
			want: "MILLRACE_DATABASE_URL is not a PostgreSQL URL (it does not start with postgres://): write it as postgres://USER:PASSWORD@HOST:5432/companydata"},
		{name: "non-admin user", url: at("ds_user:ds_user", hostPort, db), setup: true,
			want: "user ds_user lacks the rights millrace needs in database " + db + " (permission denied for "},
		{name: "nothing listening", url: at("admin:"+secret, fmt.Sprintf("127.0.0.1:%d", freePort(t)), "companydata"), setup: true,
			want: "nothing listens on 127.0.0.1:"},
		{name: "database missing", url: at("admin:admin", hostPort, "no_such_database"),
			want: "database no_such_database does not exist on " + hostPort + ": run `millrace db setup` to create it, or fix the database's name in MILLRACE_DATABASE_URL"},
		{name: "schema not set up", url: at("admin:admin", hostPort, freshDB),
			want: "millrace is not set up in database " + freshDB + " on " + hostPort + ": run `millrace db setup` first"},
		{name: "TLS required", url: at("admin:admin", hostPort, db) + "?sslmode=require", setup: true,
			want: "PostgreSQL on " + hostPort + " does not accept TLS, which MILLRACE_DATABASE_URL requires (sslmode=require): turn ssl on in the server, or leave sslmode out"},
		// "not found", or "cannot look up" where no DNS server answers.
		{name: "host not found", url: at("admin:"+secret, "no-such-host.invalid:5432", "companydata"), setup: true,
			want: "host no-such-host.invalid not found: fix the host in MILLRACE_DATABASE_URL", orElse: "cannot look host no-such-host.invalid up"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := &cli{t: t, now: time.Date(2020, 3, 15, 0, 0, 0, 0, time.UTC), env: map[string]string{
				"MILLRACE_SOURCE": t.TempDir(), "MILLRACE_LOG_LEVEL": "warn",
			}}
			var pre []string
			if tc.flag {
				pre = []string{"--database-url", tc.url}
			} else {
				c.env["MILLRACE_DATABASE_URL"] = tc.url
			}
			// db status lists the migrations of a database never set up:
			// it is how one sees that they are pending.
			commands := [][]string{{"status", "load_sales_data"}, {"run", "load_sales_data", "--partition", "2020-01"}, {"backfill", "load_sales_data", "--dry-run"}, {"user", "list"}, {"pause", "load_sales_data", "--reason", "test"}}
			if tc.name != "schema not set up" {
				commands = append(commands, []string{"db", "status"})
			}
			if tc.setup {
				commands = append(commands, setupToo)
			}
			for _, args := range commands {
				if tc.name == "non-admin user" {
					// ds_user's password is the default only while no test
					// changes it, under the lock.
					unlock := dbtest.Lock(t)
					_, _, err = c.run(append(pre, args...)...)
					unlock()
				} else {
					_, _, err = c.run(append(pre, args...)...)
				}
				cmd := strings.Join(args, " ")
				if err == nil {
					t.Errorf("millrace %s succeeded", cmd)
					continue
				}
				msg := err.Error()
				if !strings.HasPrefix(msg, tc.want) && (tc.orElse == "" || !strings.HasPrefix(msg, tc.orElse)) {
					t.Errorf("millrace %s:\n got %s\nwant %s...", cmd, msg, tc.want)
				}
				for _, bad := range []string{"\n", secret, "is the database up", "tls error", "refused TLS", "SQLSTATE", "failed to connect"} {
					if strings.Contains(msg, bad) {
						t.Errorf("millrace %s: the message holds %q: %s", cmd, bad, msg)
					}
				}
				if strings.Count(msg, "connection refused") > 1 {
					t.Errorf("millrace %s says connection refused more than once: %s", cmd, msg)
				}
			}
		})
	}
}
