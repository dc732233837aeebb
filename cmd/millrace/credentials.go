package main

import (
	"context"
	"strings"

	"github.com/millrace/millrace/users"
	"github.com/millrace/millrace/warehouse"
)

// uiPasswordIsDefault reports whether MILLRACE_UI_USER signs in with the
// password admin: as configured while no user exists (serve creates it
// so), else as stored.
func (m *Main) uiPasswordIsDefault(ctx context.Context, w *warehouse.Warehouse) bool {
	st := users.New(w.Pool())
	list, err := st.List(ctx)
	if err != nil || len(list) == 0 {
		return m.config.UIPassword == defaultUIPassword
	}
	_, ok, err := st.Authenticate(ctx, m.config.UIUser, defaultUIPassword)
	return err == nil && ok
}

// defaultUIPassword is the built-in MILLRACE_UI_PASSWORD.
const defaultUIPassword = "admin"

// passwordSetting names, for each user that set-up manages, the setting
// that gives it its password.
var passwordSetting = map[string]string{
	warehouse.DSUser:        "MILLRACE_DS_USER_PASSWORD",
	warehouse.MLEUser:       "MILLRACE_MLE_USER_PASSWORD",
	warehouse.AnalyticsUser: "MILLRACE_ANALYTICS_PASSWORD",
}

// warnDefaultCredentials logs a warning for each default credential still in
// use: the UI password admin, whatever the user name (the first admin's
// when there is no user yet, else MILLRACE_UI_USER's as stored), and each database
// user whose password is its own name, as the database stores it (not as
// the configuration says: a user's password may have been changed by hand,
// or never). The demo, which has them by design, says so in one line.
func (m *Main) warnDefaultCredentials(ctx context.Context, w *warehouse.Warehouse) {
	var defaults []string
	if m.uiPasswordIsDefault(ctx, w) {
		defaults = append(defaults, "the UI's "+m.config.UIUser)
		if !m.inDemo {
			m.logger.Warn("DEFAULT CREDENTIAL: the web UI password is the default, admin: whoever reaches the UI or the API can manage users, run and backfill pipelines; change it with `millrace user passwd` (or MILLRACE_UI_PASSWORD before the first start)",
				"ui_user", m.config.UIUser)
		}
	}
	roles, err := w.NameAsPassword(ctx)
	if err != nil {
		m.logger.Warn("cannot check the database users for default passwords", "err", err)
		return
	}
	for _, u := range roles {
		defaults = append(defaults, u)
		if m.inDemo {
			continue
		}
		fix := "change it (ALTER ROLE ... PASSWORD) and the password in MILLRACE_DATABASE_URL if millrace logs in as this user"
		if s, ok := passwordSetting[u]; ok {
			fix = "set " + s + " and run millrace db setup (or serve --setup)"
		}
		m.logger.Warn("DEFAULT CREDENTIAL: a database user's password is its own name: "+fix, "user", u)
	}
	// The demo has them by design: one line says so.
	if m.inDemo && len(defaults) > 0 {
		m.logger.Warn("DEFAULT CREDENTIALS, as the demo has by design (the banner lists them): keep its ports to this machine, and never put data you care about in it",
			"users", strings.Join(defaults, ", "))
	}
}
