package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/lineage"
	"github.com/millrace/millrace/notify"
	"github.com/millrace/millrace/orchestrator"
	"github.com/millrace/millrace/pipelines"
	"github.com/millrace/millrace/source"
	"github.com/millrace/millrace/warehouse"
	"github.com/millrace/millrace/web"
)

// Config is millrace's configuration. Every field comes from a MILLRACE_*
// environment variable and can be overridden by a flag; see settings.
type Config struct {
	DatabaseURL string
	Source      string
	// Pipelines is the folder of pipeline files; "" for the built-ins.
	Pipelines  string
	S3         source.S3Config
	Passwords  warehouse.Passwords
	SalesStart string
	LogLevel   string

	HTTPAddr          string
	UIUser            string
	UISecureCookies   bool
	UIPassword        string
	TrustedProxies    string
	ProxyHeader       string
	ProxyCreate       string
	MaxConcurrentRuns int
	MaxAttempts       int
	RetryBackoff      time.Duration
	PassInterval      time.Duration
	RescueAfter       time.Duration
	RunTimeout        time.Duration
	LateAfter         time.Duration
	SourceCheck       time.Duration
	CheckMinRatio     float64
	CheckMaxRatio     float64
	ReloadStale       bool
	SourceIdleTimeout time.Duration

	NotifyURL    string
	NotifyFormat string
	PublicURL    string
	AllowedHosts string

	OpenLineageURL       string
	OpenLineageNamespace string
}

// setting ties one configuration field to its environment variable, its
// flag and its default.
type setting struct {
	env, flag, def, usage string
	// secret settings never show their value in --help.
	secret bool
	// databaseURL settings show their value in --help without its password.
	databaseURL bool
	// One of these points at the field the setting fills.
	str      *string
	boolean  *bool
	integer  *int
	number   *float64
	duration *time.Duration
}

// settings lists every setting of Config; the flags and the README's
// configuration table come from it, so that they cannot drift apart.
func (c *Config) settings() []setting {
	return []setting{
		{env: "MILLRACE_DATABASE_URL", flag: "database-url", def: "postgres://admin:admin@localhost:5432/companydata", usage: "admin connection to the companydata database", databaseURL: true, str: &c.DatabaseURL},
		{env: "MILLRACE_PIPELINES", flag: "pipelines", def: "", usage: "the folder of pipeline files (millrace pipelines init DIR writes the built-ins as its start); empty: the built-in pipelines", str: &c.Pipelines},
		{env: "MILLRACE_SOURCE", flag: "source", def: "s3://daredata-technical-challenge-data", usage: "where the files are: s3://bucket[/prefix], a directory or a file:// URL", str: &c.Source},
		{env: "MILLRACE_S3_REGION", flag: "s3-region", def: source.DefaultRegion, usage: "S3 region", str: &c.S3.Region},
		{env: "MILLRACE_S3_ENDPOINT", flag: "s3-endpoint", def: "", usage: "S3-compatible endpoint URL (MinIO, LocalStack); empty for AWS", str: &c.S3.Endpoint},
		{env: "MILLRACE_S3_PATH_STYLE", flag: "s3-path-style", def: "false", usage: "address buckets by path (http://host/bucket/key), as MinIO wants", boolean: &c.S3.PathStyle},
		{env: "MILLRACE_S3_ANONYMOUS", flag: "s3-anonymous", def: "true", usage: "read the bucket unsigned; false uses the standard AWS credential chain", boolean: &c.S3.Anonymous},
		{env: "MILLRACE_DS_USER_PASSWORD", flag: "ds-user-password", def: "ds_user", usage: "password of ds_user", secret: true, str: &c.Passwords.DSUser},
		{env: "MILLRACE_MLE_USER_PASSWORD", flag: "mle-user-password", def: "mle_user", usage: "password of mle_user", secret: true, str: &c.Passwords.MLEUser},
		{env: "MILLRACE_ANALYTICS_PASSWORD", flag: "analytics-password", def: "analytics", usage: "password of analytics", secret: true, str: &c.Passwords.Analytics},
		{env: "MILLRACE_ADMIN_PASSWORD", flag: "admin-password", def: "admin", usage: "password given to admin if set-up has to create that user", secret: true, str: &c.Passwords.Admin},
		{env: "MILLRACE_SALES_START", flag: "sales-start", def: pipelines.DefaultSalesStart, usage: "first month of the monthly sales schedule (YYYY-MM)", str: &c.SalesStart},
		{env: "MILLRACE_LOG_LEVEL", flag: "log-level", def: "info", usage: "debug, info, warn or error", str: &c.LogLevel},
		{env: "MILLRACE_HTTP_ADDR", flag: "http-addr", def: ":8082", usage: "address of the web UI, /healthz and /metrics", str: &c.HTTPAddr},
		{env: "MILLRACE_UI_USER", flag: "ui-user", def: "admin", usage: "user name of the web UI login", str: &c.UIUser},
		{env: "MILLRACE_UI_PASSWORD", flag: "ui-password", def: "admin", usage: "password of the web UI login (also HTTP Basic for /api)", secret: true, str: &c.UIPassword},
		{env: "MILLRACE_UI_SECURE_COOKIES", flag: "ui-secure-cookies", def: "false", usage: "mark the UI's cookies Secure: set it when users reach the UI over HTTPS", boolean: &c.UISecureCookies},
		{env: "MILLRACE_TRUSTED_PROXIES", flag: "trusted-proxies", def: "", usage: "comma-separated CIDRs of reverse proxies whose X-Forwarded-For names the client (login limiter, log); empty trusts none", str: &c.TrustedProxies},
		{env: "MILLRACE_AUTH_PROXY_HEADER", flag: "auth-proxy-header", def: "", usage: "header in which a sign-in proxy (oauth2-proxy, an SSO gateway) names the user, such as X-Forwarded-User; believed only from MILLRACE_TRUSTED_PROXIES; empty: none", str: &c.ProxyHeader},
		{env: "MILLRACE_AUTH_PROXY_CREATE", flag: "auth-proxy-create", def: "viewer", usage: "a user the proxy names and millrace does not know: viewer creates it as a viewer, refuse answers 403", str: &c.ProxyCreate},
		{env: "MILLRACE_MAX_CONCURRENT_RUNS", flag: "max-concurrent-runs", def: strconv.Itoa(orchestrator.DefaultMaxConcurrentRuns), usage: "runs one process executes at once", integer: &c.MaxConcurrentRuns},
		{env: "MILLRACE_MAX_ATTEMPTS", flag: "max-attempts", def: strconv.Itoa(orchestrator.DefaultMaxAttempts), usage: "attempts of a run failing with transient errors before it stays failed", integer: &c.MaxAttempts},
		{env: "MILLRACE_RETRY_BACKOFF", flag: "retry-backoff", def: durationText(orchestrator.DefaultRetryBackoff), usage: "wait before the first retry; doubles each attempt, at most 1h", duration: &c.RetryBackoff},
		{env: "MILLRACE_SCHEDULE_INTERVAL", flag: "schedule-interval", def: durationText(orchestrator.DefaultPassInterval), usage: "how often the scheduler looks for due work (it also wakes when a month closes)", duration: &c.PassInterval},
		{env: "MILLRACE_RESCUE_AFTER", flag: "rescue-after", def: durationText(orchestrator.DefaultRescueAfter), usage: "the longest a scheduler pass may take before River hands it to another process (a dead process's runs are taken over within seconds)", duration: &c.RescueAfter},
		{env: "MILLRACE_LATE_AFTER", flag: "late-after", def: durationText(orchestrator.DefaultLateAfter), usage: "a month that has not succeeded this long after it closed is late (grid, API, /metrics, an alert)", duration: &c.LateAfter},
		{env: "MILLRACE_SOURCE_CHECK_INTERVAL", flag: "source-check-interval", def: durationText(orchestrator.DefaultSourceCheckInterval), usage: "how often serve lists the source (one request) to mark stale the months whose file changed or disappeared since it was loaded", duration: &c.SourceCheck},
		{env: "MILLRACE_RELOAD_STALE", flag: "reload-stale", def: "false", usage: "re-run stale months by themselves", boolean: &c.ReloadStale},
		{env: "MILLRACE_CHECK_MIN_RATIO", flag: "check-min-ratio", def: strconv.FormatFloat(pipelines.DefaultMinRatio, 'g', -1, 64), usage: "a month with fewer rows than this share of the median of the 6 months before, or a client reload with fewer than this share of the rows it replaces, fails its check", number: &c.CheckMinRatio},
		{env: "MILLRACE_CHECK_MAX_RATIO", flag: "check-max-ratio", def: strconv.FormatFloat(pipelines.DefaultMaxRatio, 'g', -1, 64), usage: "a month with more rows than this multiple of the median of the 6 months before fails its check", number: &c.CheckMaxRatio},
		{env: "MILLRACE_RUN_TIMEOUT", flag: "run-timeout", def: durationText(pipelines.DefaultRunTimeout), usage: "longest a run may take: then it is cancelled, rolled back, recorded as failed and retried like a transient failure", duration: &c.RunTimeout},
		{env: "MILLRACE_SOURCE_IDLE_TIMEOUT", flag: "source-idle-timeout", def: "2m", usage: "how long opening or reading a source file may go without progress before the run fails (transient)", duration: &c.SourceIdleTimeout},
		{env: "MILLRACE_NOTIFY_URL", flag: "notify-url", def: "", usage: "comma-separated webhook URLs that receive an HTTP POST for each alert (failed, recovered, late, cancelled); empty sends none", secret: true, str: &c.NotifyURL},
		{env: "MILLRACE_NOTIFY_FORMAT", flag: "notify-format", def: notify.FormatJSON, usage: "body of the alerts: json, or slack ({\"text\": ...}, which Slack, Mattermost and most chat webhooks accept)", str: &c.NotifyFormat},
		{env: "MILLRACE_OPENLINEAGE_URL", flag: "openlineage-url", def: "", usage: "OpenLineage endpoint that receives each run's START and COMPLETE/FAIL/ABORT events as HTTP POSTs, such as http://marquez:5000/api/v1/lineage; empty sends none", secret: true, str: &c.OpenLineageURL},
		{env: "MILLRACE_OPENLINEAGE_NAMESPACE", flag: "openlineage-namespace", def: lineage.DefaultNamespace, usage: "job namespace of the OpenLineage events", str: &c.OpenLineageNamespace},
		{env: "MILLRACE_PUBLIC_URL", flag: "public-url", def: "", usage: "where people reach the UI, such as https://millrace.example.com: alerts link to the month's page there, and the UI answers for its host (see MILLRACE_ALLOWED_HOSTS)", str: &c.PublicURL},
		{env: "MILLRACE_ALLOWED_HOSTS", flag: "allowed-hosts", def: "", usage: "comma-separated host names the UI answers for besides MILLRACE_PUBLIC_URL's, IP addresses and localhost (other Host headers get 421, against DNS rebinding); * for any; empty with no public URL: the machine's host name", str: &c.AllowedHosts},
	}
}

// bindFlags adds a flag for every setting to fs. A flag's default is the
// environment variable's value when it is set, else the built-in default.
func (c *Config) bindFlags(fs *pflag.FlagSet, getenv func(string) string) error {
	for _, s := range c.settings() {
		def := s.def
		if v := getenv(s.env); v != "" {
			def = v
		}
		usage := fmt.Sprintf("%s (env %s)", s.usage, s.env)
		if s.boolean != nil {
			b, err := strconv.ParseBool(def)
			if err != nil {
				return fmt.Errorf("%s=%q: want true or false", s.env, def)
			}
			fs.BoolVar(s.boolean, s.flag, b, usage)
			continue
		}
		// Numbers and durations are typed flags, checked by the parser
		// (a bad flag is refused with its name), and at least 1 or
		// positive (checked with the setting's name, after parsing).
		switch {
		case s.integer != nil:
			v, err := strconv.Atoi(def)
			if err != nil {
				return fmt.Errorf("%s=%q: want a whole number", s.env, def)
			}
			fs.IntVar(s.integer, s.flag, v, usage)
			continue
		case s.number != nil:
			v, err := strconv.ParseFloat(def, 64)
			if err != nil {
				return fmt.Errorf("%s=%q: want a number such as 0.5", s.env, def)
			}
			fs.Float64Var(s.number, s.flag, v, usage)
			continue
		case s.duration != nil:
			v, err := time.ParseDuration(def)
			if err != nil {
				return fmt.Errorf("%s=%q: want a duration such as 30s or 5m", s.env, def)
			}
			fs.DurationVar(s.duration, s.flag, v, usage)
			continue
		}
		fs.StringVar(s.str, s.flag, def, usage)
		if s.secret && def != s.def {
			fs.Lookup(s.flag).DefValue = "set by " + s.env
		}
		if s.databaseURL {
			fs.Lookup(s.flag).DefValue = warehouse.RedactURL(def)
		}
	}
	return nil
}

// trustedProxies parses MILLRACE_TRUSTED_PROXIES.
func (c *Config) trustedProxies() ([]netip.Prefix, error) {
	p, err := web.ParseTrustedProxies(c.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("MILLRACE_TRUSTED_PROXIES: %w", err)
	}
	return p, nil
}

// proxyAuth returns the sign-in proxy's header and whether unknown users
// are created; it refuses a header without a trusted proxy, which no
// request could then use, and a create setting other than viewer and
// refuse.
func (c *Config) proxyAuth() (header string, create bool, err error) {
	switch c.ProxyCreate {
	case "viewer":
		create = true
	case "refuse":
	default:
		return "", false, fmt.Errorf("MILLRACE_AUTH_PROXY_CREATE=%q: want viewer or refuse", c.ProxyCreate)
	}
	header = strings.TrimSpace(c.ProxyHeader)
	if header != "" && strings.TrimSpace(c.TrustedProxies) == "" {
		return "", false, fmt.Errorf("MILLRACE_AUTH_PROXY_HEADER=%s needs MILLRACE_TRUSTED_PROXIES: the header is believed only from the proxies listed there", header)
	}
	return header, create, nil
}

// allowedHosts returns the host names the UI answers for besides IP
// addresses, localhost and the public URL's host: MILLRACE_ALLOWED_HOSTS,
// or, when neither it nor MILLRACE_PUBLIC_URL is set, the machine's host
// name (hostname is os.Hostname), so that http://HOSTNAME:8082 works
// without configuration.
func (c *Config) allowedHosts(hostname func() (string, error)) ([]string, error) {
	hosts, err := web.ParseAllowedHosts(c.AllowedHosts)
	if err != nil {
		return nil, fmt.Errorf("MILLRACE_ALLOWED_HOSTS: %w", err)
	}
	if len(hosts) == 0 && strings.TrimSpace(c.PublicURL) == "" {
		if name, err := hostname(); err == nil && name != "" {
			hosts = append(hosts, name)
		}
	}
	return hosts, nil
}

// salesStart returns the first month of the sales schedule.
func (c *Config) salesStart() (millrace.Month, error) {
	m, err := millrace.ParseMonth(c.SalesStart)
	if err != nil {
		return millrace.Month{}, fmt.Errorf("MILLRACE_SALES_START: %w", err)
	}
	return m, nil
}

// notifier returns the notifier of the configured URLs, without its
// database; it refuses a URL that is not an absolute http(s) URL (naming
// it by its label only: it may hold a secret), a format other than json
// and slack, and a public URL that is not an absolute http(s) URL.
func (c *Config) notifier(logger *slog.Logger) (*notify.Notifier, error) {
	if err := notify.CheckFormat(c.NotifyFormat); err != nil {
		return nil, fmt.Errorf("MILLRACE_NOTIFY_FORMAT: %w", err)
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("MILLRACE_PUBLIC_URL=%q: want an absolute http:// or https:// URL, such as https://millrace.example.com", c.PublicURL)
		}
	}
	n := &notify.Notifier{Format: c.NotifyFormat, PublicURL: c.PublicURL, Logger: logger}
	for i, raw := range strings.Split(c.NotifyURL, ",") {
		if raw = strings.TrimSpace(raw); raw == "" {
			continue
		}
		if err := notify.CheckURL(raw); err != nil {
			return nil, fmt.Errorf("MILLRACE_NOTIFY_URL, URL %d: %w", i+1, err)
		}
		n.URLs = append(n.URLs, raw)
	}
	return n, nil
}

// lineage returns the deliverer of OpenLineage events to the configured
// URL, without its database and pipelines, or nil when no URL is set; it
// refuses a URL that is not an absolute http(s) URL (naming it by its label
// only: it may hold a secret) and an empty namespace.
func (c *Config) lineage(logger *slog.Logger) (*lineage.Deliverer, error) {
	raw := strings.TrimSpace(c.OpenLineageURL)
	if raw == "" {
		return nil, nil
	}
	if err := notify.CheckURL(raw); err != nil {
		return nil, fmt.Errorf("MILLRACE_OPENLINEAGE_URL: %w", err)
	}
	if strings.TrimSpace(c.OpenLineageNamespace) == "" {
		return nil, errors.New("MILLRACE_OPENLINEAGE_NAMESPACE is empty: want a job namespace, such as millrace")
	}
	producer := lineage.DefaultProducer
	if v, _, _ := buildVersion(); v != "dev" {
		producer += "/tree/" + v
	}
	return &lineage.Deliverer{URL: raw, Namespace: c.OpenLineageNamespace, Producer: producer, Logger: logger}, nil
}

// check refuses numbers below 1 and durations of 0 or less, naming the
// setting, and a bad notification or lineage setting.
func (c *Config) check() error {
	if _, err := c.notifier(nil); err != nil {
		return err
	}
	if _, err := c.lineage(nil); err != nil {
		return err
	}
	for _, st := range c.settings() {
		switch {
		case st.integer != nil && *st.integer < 1:
			return fmt.Errorf("%s (--%s) = %d: want a whole number of at least 1", st.env, st.flag, *st.integer)
		case st.duration != nil && *st.duration <= 0:
			return fmt.Errorf("%s (--%s) = %s: want a positive duration such as 30s or 5m", st.env, st.flag, *st.duration)
		case st.number != nil && *st.number <= 0:
			return fmt.Errorf("%s (--%s) = %g: want a positive number", st.env, st.flag, *st.number)
		}
	}
	if c.CheckMinRatio >= 1 || c.CheckMaxRatio <= 1 {
		return fmt.Errorf("MILLRACE_CHECK_MIN_RATIO = %g, MILLRACE_CHECK_MAX_RATIO = %g: want the first below 1 and the second above 1", c.CheckMinRatio, c.CheckMaxRatio)
	}
	return nil
}

// pipelinesConfig returns the pipelines' settings and the source's idle
// timeout.
func (c *Config) pipelinesConfig() (pipelines.Config, time.Duration, error) {
	start, err := c.salesStart()
	if err != nil {
		return pipelines.Config{}, 0, err
	}
	return pipelines.Config{SalesStart: start, RunTimeout: c.RunTimeout, MinRatio: c.CheckMinRatio, MaxRatio: c.CheckMaxRatio}, c.SourceIdleTimeout, c.check()
}

// orchestratorConfig returns the orchestrator's settings.
func (c *Config) orchestratorConfig() (orchestrator.Config, error) {
	start, err := c.salesStart()
	if err != nil {
		return orchestrator.Config{}, err
	}
	return orchestrator.Config{SalesStart: start, MaxConcurrentRuns: c.MaxConcurrentRuns, MaxAttempts: c.MaxAttempts,
		RetryBackoff: c.RetryBackoff, PassInterval: c.PassInterval, RescueAfter: c.RescueAfter, LateAfter: c.LateAfter,
		SourceCheckInterval: c.SourceCheck, ReloadStale: c.ReloadStale}, c.check()
}

// setupPasswords returns the passwords of the database users for set-up:
// those the configuration gives explicitly (a variable or a flag), and
// empty for the others, so that set-up gives a new user its name as
// password and leaves an existing user's own password alone.
func (m *Main) setupPasswords() warehouse.Passwords {
	pw := m.config.Passwords
	for _, s := range []struct {
		env, flag string
		field     *string
	}{
		{"MILLRACE_DS_USER_PASSWORD", "ds-user-password", &pw.DSUser},
		{"MILLRACE_MLE_USER_PASSWORD", "mle-user-password", &pw.MLEUser},
		{"MILLRACE_ANALYTICS_PASSWORD", "analytics-password", &pw.Analytics},
	} {
		if m.Getenv(s.env) == "" && (m.flags == nil || !m.flags.Changed(s.flag)) {
			*s.field = ""
		}
	}
	return pw
}

// durationText writes a default duration as people write it: 30s, 1m,
// 6h (time.Duration's 1m0s, 6h0m0s without the zeros).
func durationText(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
