package warehouse_test

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace/internal/dbtest"
	"github.com/millrace/millrace/warehouse"
)

// TestNameAsPassword creates roles whose password is their name, stored as
// SCRAM-SHA-256 and as MD5, and roles that must not be reported: another
// password, no login, no password. The check finds exactly the first two
// of them, and the cluster's superuser admin/admin.
func TestNameAsPassword(t *testing.T) {
	t.Parallel()
	url := dbtest.NewDatabase(t)
	db := databaseOf(t, url)
	admin := dbtest.Connect(t, url)
	roles := []struct {
		suffix, encryption, options string
		nameAsPassword, want        bool
	}{
		{"_scram", "scram-sha-256", "LOGIN", true, true},
		{"_md5", "md5", "LOGIN", true, true},
		{"_other", "scram-sha-256", "LOGIN", false, false},
		{"_other_md5", "md5", "LOGIN", false, false},
		{"_nologin", "scram-sha-256", "NOLOGIN", true, false},
		{"_nopassword", "", "LOGIN", false, false},
	}
	unlock := dbtest.Lock(t)
	for _, r := range roles {
		name := db + r.suffix
		password := "another password"
		if r.nameAsPassword {
			password = name
		}
		sql, args := "SELECT format('CREATE ROLE %I "+r.options+"', $1::text)", []any{name}
		if r.encryption != "" {
			dbtest.Exec(t, admin, "SET password_encryption = "+pgx.Identifier{r.encryption}.Sanitize())
			sql, args = "SELECT format('CREATE ROLE %I "+r.options+" PASSWORD %L', $1::text, $2::text)", []any{name, password}
		}
		var create string
		if err := admin.QueryRow(t.Context(), sql, args...).Scan(&create); err != nil {
			t.Fatal(err)
		}
		dbtest.Exec(t, admin, create)
		t.Cleanup(func() {
			if _, err := admin.Exec(context.Background(), "DROP ROLE "+pgx.Identifier{name}.Sanitize()); err != nil {
				t.Errorf("drop role %s: %v", name, err)
			}
		})
	}
	unlock()

	w, err := warehouse.Open(t.Context(), url, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	got, err := w.NameAsPassword(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range roles {
		if found := slices.Contains(got, db+r.suffix); found != r.want {
			t.Errorf("role %s reported: %v, want %v (all: %v)", db+r.suffix, found, r.want, got)
		}
	}
	if !slices.Contains(got, dbtest.AdminUser) {
		t.Errorf("the superuser %s/%s is not reported: %v", dbtest.AdminUser, dbtest.AdminPassword, got)
	}

	// The verifier that matched is the real password: the role logs in with it.
	conn := dbtest.Connect(t, dbtest.URL(t, db+"_scram", db+"_scram", db))
	var user string
	if err := conn.QueryRow(t.Context(), "SELECT current_user").Scan(&user); err != nil || user != db+"_scram" {
		t.Errorf("log in as %s_scram: %q, %v", db, user, err)
	}

	// Not the name: the stored verifiers refuse a wrong password.
	for _, suffix := range []string{"_scram", "_md5"} {
		var verifier string
		if err := admin.QueryRow(t.Context(), "SELECT rolpassword FROM pg_authid WHERE rolname = $1", db+suffix).Scan(&verifier); err != nil {
			t.Fatal(err)
		}
		if warehouse.PasswordMatches(verifier, db+suffix, "wrong") {
			t.Errorf("verifier of %s%s accepts a wrong password", db, suffix)
		}
	}
}

// TestNameAsPasswordNeedsSuperuser: a user who cannot read pg_authid gets
// an error that says why, not an empty list.
func TestNameAsPasswordNeedsSuperuser(t *testing.T) {
	t.Parallel()
	b := setupDatabase(t)
	w, err := warehouse.Open(t.Context(), dbtest.URL(t, "analytics", "analytics", b.database), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got, err := w.NameAsPassword(t.Context()); err == nil {
		t.Errorf("as analytics: %v, no error; want a refusal", got)
	}
}

func TestPasswordMatchesMalformed(t *testing.T) {
	t.Parallel()
	for _, v := range []string{
		"",
		"r",
		"md5",
		"md5xyz",
		"SCRAM-SHA-256$",
		"SCRAM-SHA-256$4096",
		"SCRAM-SHA-256$4096:c2FsdA==",
		"SCRAM-SHA-256$4096:c2FsdA==$a2V5",
		"SCRAM-SHA-256$0:c2FsdA==$a2V5:a2V5",
		"SCRAM-SHA-256$-1:c2FsdA==$a2V5:a2V5",
		"SCRAM-SHA-256$1000000000:c2FsdA==$a2V5:a2V5", // too many iterations: not checked
		"SCRAM-SHA-256$4096:!!!$a2V5:a2V5",
		"SCRAM-SHA-256$4096:c2FsdA==$a2V5:a2V5", // well formed, another password
	} {
		if warehouse.PasswordMatches(v, "r", "r") {
			t.Errorf("PasswordMatches(%q) = true", v)
		}
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"postgres://admin:s3cret@db:5432/companydata", "postgres://admin:xxxxx@db:5432/companydata"},
		{"postgresql://admin:p%40ss@db/companydata?sslmode=require", "postgresql://admin:xxxxx@db/companydata?sslmode=require"},
		{"postgres://admin@db/companydata", "postgres://admin@db/companydata"},
		{"postgres://db/companydata?user=admin&password=s3cret", "postgres://db/companydata?password=xxxxx&user=admin"},
		{"host=db user=admin password=s3cret dbname=companydata", "host=db user=admin password=xxxxx dbname=companydata"},
		{"host=db password='s3 cr\\'et' dbname=companydata", "host=db password=xxxxx dbname=companydata"},
		{"postgres://admin:s3cret@db:bad-port/x", "postgres://admin:xxxxx@db:bad-port/x"},
		{"postgres://admin@db/x?sslpassword=k3y&sslmode=verify-full", "postgres://admin@db/x?sslmode=verify-full&sslpassword=xxxxx"},
		{"host=db password=sec\\ ret dbname=x", "host=db password=xxxxx dbname=x"},
		{"host=db sslpassword=k3y", "host=db sslpassword=xxxxx"},
		// Shapes that do not parse: nothing of the password is kept.
		{"postgres://admin:SE/CRET16@db:5432/companydata", "postgres://admin:xxxxx@db:5432/companydata"},
		{"postgres://admin:SE#CRET@db/companydata", "postgres://admin:xxxxx@db/companydata"},
		{"postgres://admin:a@b:c@db/x", "postgres://admin:xxxxx@db/x"},
		{"postgres://admin:pa?ss@db/x", "postgres://admin:xxxxx@db/x"},
		{"postgres://db:x/y?password=SE/CRET&user=a", "postgres://db:x/y?xxxxx"},
		{"postgres://admin:s3cret@h1:5432,h2:5433/x", "postgres://admin:xxxxx@h1:5432,h2:5433/x"},
		{"host=db password='SECRET8 dbname=x", "xxxxx (a connection string that does not parse)"},
		{"host=db password='SE\\'CRET dbname=x", "xxxxx (a connection string that does not parse)"},
	} {
		if got := warehouse.RedactURL(c.in); got != c.want {
			t.Errorf("RedactURL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
