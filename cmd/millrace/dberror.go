package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/millrace/millrace/warehouse"
)

// dbError turns a failure to connect to the database, or to find
// millrace's schema in it, into one line that says what is wrong and what
// to do; every command that opens the database passes its error through
// it. raw is the database URL and setting names where it came from (such
// as MILLRACE_DATABASE_URL). No message holds the password. Errors of
// another kind come back unchanged.
func dbError(err error, raw, setting string) error {
	if err == nil {
		return nil
	}
	if msg := explain(err, raw, setting); msg != "" {
		return &explained{msg: msg, err: err}
	}
	return err
}

// explained is an error of the database said in one line for people. It
// wraps that error still, so that what the program decides by (such as
// warehouse.Disconnected) reads it.
type explained struct {
	msg string
	err error
}

// Error returns the line for people.
func (e *explained) Error() string { return e.msg }

// Unwrap returns the database's error.
func (e *explained) Unwrap() error { return e.err }

// explain returns the line that says what is wrong with err and what to do,
// or "" for an error it does not know.
func explain(err error, raw, setting string) string {
	var parseErr *pgconn.ParseConfigError
	if errors.As(err, &parseErr) {
		// pgx hides the password in its text; RedactURL hides what it
		// may have missed.
		return fmt.Sprintf("%s is not a PostgreSQL URL (%s): write it as %s", setting, warehouse.RedactURL(parseErr.Error()), urlShape)
	}
	cfg, perr := pgconn.ParseConfig(raw)
	if perr != nil {
		return ""
	}
	where := net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
	if strings.HasPrefix(cfg.Host, "/") {
		where = "the socket in " + cfg.Host
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01": // invalid_password
			if cfg.Password == "" {
				return fmt.Sprintf("%s gives no password for user %s, and PostgreSQL on %s asks for one: write it as postgres://%s:PASSWORD@%s/%s",
					setting, cfg.User, where, cfg.User, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), cfg.Database)
			}
			return fmt.Sprintf("PostgreSQL on %s refused the password of user %s (a wrong password, or no such user): put the right password in %s", where, cfg.User, setting)
		case "28000": // invalid_authorization_specification: pg_hba.conf, or a role that may not log in
			return fmt.Sprintf("PostgreSQL on %s does not let user %s in (%s): allow it in the server's pg_hba.conf, or name another user in %s", where, cfg.User, pgErr.Message, setting)
		case "3D000": // invalid_catalog_name
			return fmt.Sprintf("database %s does not exist on %s: run `millrace db setup` to create it, or fix the database's name in %s", cfg.Database, where, setting)
		case "3F000": // invalid_schema_name
			return fmt.Sprintf("millrace is not set up in database %s on %s (%s): run `millrace db setup` first", cfg.Database, where, pgErr.Message)
		case "42501": // insufficient_privilege
			return fmt.Sprintf("user %s lacks the rights millrace needs in database %s (%s): %s must name the admin user that set the database up, not %s", cfg.User, cfg.Database, pgErr.Message, setting, cfg.User)
		case "53300": // too_many_connections
			return fmt.Sprintf("PostgreSQL on %s has no connection left (%s): try again later, or raise its max_connections", where, pgErr.Message)
		case "57P01", "57P02", "57P03": // admin_shutdown (a fast shutdown ends a new connection), crash_shutdown, cannot_connect_now
			return fmt.Sprintf("PostgreSQL on %s is starting or stopping (%s): try again in a moment", where, pgErr.Message)
		}
		return ""
	}
	if errors.Is(err, warehouse.ErrNotSetUp) {
		return fmt.Sprintf("millrace is not set up in database %s on %s: run `millrace db setup` first", cfg.Database, where)
	}
	var connErr *pgconn.ConnectError
	if !errors.As(err, &connErr) {
		return ""
	}
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("nothing listens on %s (connection refused): start PostgreSQL there (`millrace demo`, or `docker compose up`), or point %s at your database", where, setting)
	case strings.HasPrefix(cfg.Host, "/") && errors.Is(err, syscall.ENOENT):
		return fmt.Sprintf("no PostgreSQL listens on %s: name its host in %s, as in %s", where, setting, urlShape)
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return fmt.Sprintf("host %s not found: fix the host in %s", cfg.Host, setting)
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("cannot look host %s up (%s): check the network, or the host in %s", cfg.Host, dnsErr.Err, setting)
	case pgconn.Timeout(err) || errors.Is(err, context.DeadlineExceeded) || isNetTimeout(err):
		return fmt.Sprintf("no answer from %s in time: check the host and port in %s, and that no firewall drops the connection", where, setting)
	case strings.Contains(err.Error(), "server refused TLS connection"):
		// With sslmode=prefer (the default) pgx tries again without TLS and
		// reports the error of that try as well, handled above: here TLS was
		// required.
		return fmt.Sprintf("PostgreSQL on %s does not accept TLS, which %s requires (sslmode=%s): turn ssl on in the server, or leave sslmode out", where, setting, sslMode(raw))
	}
	return fmt.Sprintf("cannot connect to PostgreSQL on %s as %s: %v", where, cfg.User, err)
}

// urlShape is what a database URL looks like, for messages.
const urlShape = "postgres://USER:PASSWORD@HOST:5432/companydata"

// isNetTimeout reports whether err is a network timeout.
func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// sslMode returns the sslmode a connection string asks for.
func sslMode(raw string) string {
	for _, sep := range []string{"sslmode=", "sslmode ="} {
		if _, rest, ok := strings.Cut(raw, sep); ok {
			mode, _, _ := strings.Cut(strings.TrimSpace(rest), "&")
			mode, _, _ = strings.Cut(mode, " ")
			return mode
		}
	}
	return "require"
}

// checkDatabaseURL refuses a database URL that is neither a postgres://
// URL nor a key=value connection string, which pgx would read as "connect
// to the local socket with the defaults", without showing it (it may hold
// a password).
func checkDatabaseURL(raw, setting string) error {
	if strings.HasPrefix(raw, "postgres://") || strings.HasPrefix(raw, "postgresql://") || strings.Contains(raw, "=") {
		return nil
	}
	if strings.TrimSpace(raw) == "" {
		return fmt.Errorf("%s is empty: write it as %s", setting, urlShape)
	}
	return fmt.Errorf("%s is not a PostgreSQL URL (it does not start with postgres://): write it as %s", setting, urlShape)
}
