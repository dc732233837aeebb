package warehouse

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// maxSCRAMIterations bounds the work of checking one SCRAM verifier: a user
// may store a verifier of their own choosing (ALTER ROLE ... PASSWORD
// 'SCRAM-SHA-256$...'), and a huge count would stall the check. PostgreSQL
// writes 4096.
const maxSCRAMIterations = 100_000

// NameAsPassword returns the roles that can log in with their own name as
// password, as the database stores their passwords, in pg_authid (which
// only a superuser reads): a SCRAM-SHA-256 verifier or an MD5 hash is
// checked locally against the name, the password never leaves the
// process. A verifier in another form, or with more than 100,000 SCRAM
// iterations, is not checked. Names are used as they are, without the
// SASLprep normalization that PostgreSQL applies to non-ASCII passwords.
func (w *Warehouse) NameAsPassword(ctx context.Context) ([]string, error) {
	rows, err := w.pool.Query(ctx, `
		SELECT rolname, rolpassword FROM pg_catalog.pg_authid
		WHERE rolcanlogin AND rolpassword IS NOT NULL ORDER BY rolname`)
	if err != nil {
		return nil, fmt.Errorf("read the roles' passwords (it takes a superuser): %w", err)
	}
	type role struct{ name, verifier string }
	roles, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (role, error) {
		var x role
		err := r.Scan(&x.name, &x.verifier)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("read the roles' passwords: %w", err)
	}
	var found []string
	for _, r := range roles {
		if PasswordMatches(r.verifier, r.name, r.name) {
			found = append(found, r.name)
		}
	}
	return found, nil
}

// PasswordMatches reports whether verifier, the stored password of role as
// pg_authid.rolpassword holds it, accepts password: a SCRAM-SHA-256
// verifier, SCRAM-SHA-256$ITERATIONS:SALT$STOREDKEY:SERVERKEY in base64, or
// an MD5 hash, "md5" and the hex MD5 of the password followed by the role.
func PasswordMatches(verifier, role, password string) bool {
	if rest, ok := strings.CutPrefix(verifier, "SCRAM-SHA-256$"); ok {
		return scramMatches(rest, password)
	}
	if hash, ok := strings.CutPrefix(verifier, "md5"); ok && len(hash) == 2*md5.Size {
		sum := md5.Sum([]byte(password + role))
		return subtle.ConstantTimeCompare([]byte(strings.ToLower(hash)), []byte(hex.EncodeToString(sum[:]))) == 1
	}
	return false
}

// scramMatches checks password against a SCRAM-SHA-256 verifier without its
// prefix (RFC 5802, RFC 7677): SaltedPassword is PBKDF2-HMAC-SHA-256 of the
// password, StoredKey the SHA-256 of HMAC(SaltedPassword, "Client Key") and
// ServerKey HMAC(SaltedPassword, "Server Key").
func scramMatches(verifier, password string) bool {
	params, keys, ok := strings.Cut(verifier, "$")
	if !ok {
		return false
	}
	iterText, saltText, ok := strings.Cut(params, ":")
	if !ok {
		return false
	}
	storedText, serverText, ok := strings.Cut(keys, ":")
	if !ok {
		return false
	}
	iterations, err := strconv.Atoi(iterText)
	if err != nil || iterations < 1 || iterations > maxSCRAMIterations {
		return false
	}
	salt, err1 := base64.StdEncoding.DecodeString(saltText)
	stored, err2 := base64.StdEncoding.DecodeString(storedText)
	server, err3 := base64.StdEncoding.DecodeString(serverText)
	if err1 != nil || err2 != nil || err3 != nil {
		return false
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return false
	}
	storedKey := sha256.Sum256(hmacSHA256(salted, "Client Key"))
	return hmac.Equal(storedKey[:], stored) && hmac.Equal(hmacSHA256(salted, "Server Key"), server)
}

// hmacSHA256 returns HMAC-SHA-256 of msg under key.
func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// redacted replaces a password in a connection string.
const redacted = "xxxxx"

// Patterns of passwords in key=value connection strings.
var (
	quotedPassword = regexp.MustCompile(`password\s*=\s*'(?:[^'\\]|\\.)*'`)
	plainPassword  = regexp.MustCompile(`password\s*=\s*(?:[^\s&'\\]|\\.)+`)
)

// RedactURL returns the database URL, or key=value connection string, s
// with its password replaced by xxxxx, e.g.
// postgres://admin:xxxxx@host/db: what logs, errors, --help and pages may
// show. Whatever the shape of s, nothing that may be a password is kept: of
// a URL that net/url cannot parse (a password with an unescaped / or #)
// only the user name and what follows the last @ are kept, without its
// query; of a key=value string that PostgreSQL's rules cannot parse (an
// unclosed quote) nothing is kept.
func RedactURL(s string) string {
	scheme, rest, isURL := strings.Cut(s, "://")
	if u, err := url.Parse(s); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") && (u.Port() == "" || isNumber(u.Port())) {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), redacted)
		}
		q := u.Query()
		for key := range q {
			if strings.HasSuffix(strings.ToLower(key), "password") { // password, sslpassword
				q.Set(key, redacted)
				u.RawQuery = q.Encode()
			}
		}
		return u.String()
	}
	if isURL {
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			user, _, _ := strings.Cut(rest[:at], ":")
			rest = user + ":" + redacted + "@" + rest[at+1:]
		}
		if q := strings.IndexAny(rest, "?#"); q >= 0 {
			rest = rest[:q] + "?" + redacted
		}
		return scheme + "://" + rest
	}
	if (strings.Count(s, "'")-strings.Count(s, `\'`))%2 == 1 {
		return redacted + " (a connection string that does not parse)"
	}
	s = quotedPassword.ReplaceAllLiteralString(s, "password="+redacted)
	return plainPassword.ReplaceAllLiteralString(s, "password="+redacted)
}

// isNumber reports whether s is a port number.
func isNumber(s string) bool {
	_, err := strconv.Atoi(s)
	return err == nil
}
