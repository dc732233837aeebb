package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/millrace/millrace/warehouse"
)

// installationSettings lists, by variable, the settings that every millrace
// process of one database must share: where the files come from, the
// first month of the schedule, the checks' ratios, when a month is late and
// how often a run is tried. `db setup`, `serve` and `demo` record them in
// the database (millrace.settings); every command uses the recorded value
// of a setting that it is not given explicitly (by flag or variable), so
// that `millrace run` beside a server reads the server's source. None is a
// credential.
var installationSettings = []string{
	"MILLRACE_SOURCE", "MILLRACE_S3_REGION", "MILLRACE_S3_ENDPOINT", "MILLRACE_S3_PATH_STYLE", "MILLRACE_S3_ANONYMOUS",
	"MILLRACE_SALES_START", "MILLRACE_CHECK_MIN_RATIO", "MILLRACE_CHECK_MAX_RATIO", "MILLRACE_LATE_AFTER", "MILLRACE_MAX_ATTEMPTS",
}

// settingName is the name under which the setting of variable env is
// recorded: MILLRACE_S3_REGION is s3_region.
func settingName(env string) string {
	return strings.ToLower(strings.TrimPrefix(env, "MILLRACE_"))
}

// explicit reports whether the setting was given to this process: by its
// flag, its variable, or by the command itself (the demo's source).
func (m *Main) explicit(s setting) bool {
	return m.chosen[s.env] || m.Getenv(s.env) != "" || (m.flags != nil && m.flags.Changed(s.flag))
}

// useInstallation makes this process use the installation's recorded
// settings (see installationSettings) for those it was not given
// explicitly. A setting given explicitly that differs from the recorded
// one is used, with a warning on stderr; when by is set (`db setup`,
// `serve`, `demo`: the installation's operator), it is recorded instead,
// with a line in the log, and so is every setting not recorded yet.
func (m *Main) useInstallation(ctx context.Context, w *warehouse.Warehouse, by string) error {
	recorded, err := w.Settings(ctx)
	if err != nil {
		return err
	}
	byEnv := map[string]setting{}
	for _, s := range m.config.settings() {
		byEnv[s.env] = s
	}
	record := map[string]string{}
	for _, env := range installationSettings {
		s, ok := byEnv[env]
		if !ok {
			return fmt.Errorf("installation setting %s: no such setting", env)
		}
		name := settingName(env)
		flag := m.flags.Lookup(s.flag)
		if env == "MILLRACE_SOURCE" {
			m.config.Source = absSource(m.config.Source)
		}
		value := recordable(env, flag.Value.String())
		old, has := recorded[name]
		switch {
		case !m.explicit(s) && has:
			if err := flag.Value.Set(old); err != nil {
				return fmt.Errorf("%s recorded in the database (millrace.settings) is %q: %w", env, old, err)
			}
		case !m.explicit(s) || !has:
			if by != "" {
				record[name] = value
			}
		case old != value && by != "":
			record[name] = value
		case old != value:
			fmt.Fprintf(m.Stderr, "millrace: warning: %s (--%s) is %s here, but this installation's is %s (recorded in the database by its db setup, serve or demo): this command uses %s\n",
				env, s.flag, value, old, value)
		}
	}
	if by == "" || len(record) == 0 {
		return nil
	}
	replaced, err := w.RecordSettings(ctx, record, by)
	if err != nil {
		return err
	}
	for name, old := range replaced {
		m.logger.Warn("the installation's setting changed: every millrace command on this database uses the new value from now on",
			"setting", "MILLRACE_"+strings.ToUpper(name), "was", old, "now", record[name])
	}
	return nil
}

// absSource returns a source that names a directory by a relative path
// with the directory's absolute path, which any process of the
// installation can use; other sources come back as they are.
func absSource(src string) string {
	if src == "" || strings.Contains(src, "://") || filepath.IsAbs(src) {
		return src
	}
	if abs, err := filepath.Abs(src); err == nil {
		return abs
	}
	return src
}

// recordable returns the value of a setting as it may be recorded: an
// endpoint URL without the user and password it may hold.
func recordable(env, value string) string {
	if env == "MILLRACE_S3_ENDPOINT" {
		if u, err := url.Parse(value); err == nil && u.User != nil {
			u.User = nil
			return u.String()
		}
	}
	return value
}

// demoFile is where a running demo writes how to reach it, relative to
// the directory it keeps its data in (--dir).
const demoFile = "running.json"

// defaultDemoDir is the demo's directory (--dir) by default, relative to
// the directory it is started in.
var defaultDemoDir = filepath.Join(".millrace", "demo")

// runningDemo is what a running demo writes to demoFile, for the commands
// run in the same directory, and for people.
type runningDemo struct {
	// PID is the demo's process; the file is stale once it has ended.
	PID int `json:"pid"`
	// DatabaseURL is the admin URL of the demo's database.
	DatabaseURL string `json:"database_url"`
	// UI is the URL of the web UI.
	UI string `json:"ui"`
}

// findDemo returns the demo running from dir: the one whose demoFile is in
// dir/.millrace/demo and whose process is alive.
func findDemo(dir string) (runningDemo, bool) {
	b, err := os.ReadFile(filepath.Join(dir, defaultDemoDir, demoFile))
	if err != nil {
		return runningDemo{}, false
	}
	var d runningDemo
	if err := json.Unmarshal(b, &d); err != nil || d.PID <= 0 || d.DatabaseURL == "" {
		return runningDemo{}, false
	}
	// Signal 0 checks that the process exists; EPERM: it does, as
	// another user's.
	if err := syscall.Kill(d.PID, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return runningDemo{}, false
	}
	return d, true
}

// databaseURL returns the database URL of this command and names where it
// comes from, for messages: --database-url, MILLRACE_DATABASE_URL, else
// the demo running from the current directory (which is said on stderr),
// else the built-in default.
func (m *Main) databaseURL() (raw, setting string, err error) {
	if m.dbURLFrom == "" {
		switch {
		case m.flags != nil && m.flags.Changed("database-url"):
			m.dbURLFrom = "--database-url"
		case m.Getenv("MILLRACE_DATABASE_URL") != "":
			m.dbURLFrom = "MILLRACE_DATABASE_URL"
		default:
			m.dbURLFrom = "MILLRACE_DATABASE_URL"
			dir := m.Dir
			if dir == "" {
				dir, _ = os.Getwd()
			}
			if d, ok := findDemo(dir); ok {
				m.config.DatabaseURL = d.DatabaseURL
				m.dbURLFrom = "the demo's database URL (" + filepath.Join(defaultDemoDir, demoFile) + ")"
				fmt.Fprintf(m.Stderr, "millrace: using the demo running from this directory (%s); set MILLRACE_DATABASE_URL to use another database\n",
					warehouse.RedactURL(d.DatabaseURL))
			}
		}
	}
	return m.config.DatabaseURL, m.dbURLFrom, checkDatabaseURL(m.config.DatabaseURL, m.dbURLFrom)
}
