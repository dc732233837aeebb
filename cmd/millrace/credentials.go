package main

import (
	"context"

	"github.com/millrace/millrace/warehouse"
)

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
// use: the UI password admin, whatever the user name, and each database
// user whose password is its own name, as the database stores it (not as
// the configuration says: a user's password may have been changed by hand,
// or never).
func (m *Main) warnDefaultCredentials(ctx context.Context, w *warehouse.Warehouse) {
	if m.config.UIPassword == defaultUIPassword {
		m.logger.Warn("DEFAULT CREDENTIAL: the web UI password is the default, admin: whoever reaches the UI or the API can run and backfill pipelines; set MILLRACE_UI_PASSWORD",
			"ui_user", m.config.UIUser)
	}
	users, err := w.NameAsPassword(ctx)
	if err != nil {
		m.logger.Warn("cannot check the database users for default passwords", "err", err)
		return
	}
	for _, u := range users {
		fix := "change it (ALTER ROLE ... PASSWORD) and the password in MILLRACE_DATABASE_URL if millrace logs in as this user"
		if s, ok := passwordSetting[u]; ok {
			fix = "set " + s + " and run millrace db setup (or serve --setup)"
		}
		m.logger.Warn("DEFAULT CREDENTIAL: a database user's password is its own name: "+fix, "user", u)
	}
}
