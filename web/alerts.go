package web

import (
	"net/http"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/ledger"
	"github.com/millrace/millrace/notify"
)

// alertsShown is how many of the newest alerts the Alerts page and the API
// list.
const alertsShown = 200

// alertRow is an alert on the Alerts page.
type alertRow struct {
	ledger.Alert
	// State gives the event's badge the colour of a state.
	State millrace.State
	// Path is the page of the alert's partition.
	Path string
	// Label is the partition for people: the month, or "(unpartitioned)".
	Label string
	// Stale says that the alert is too old to be sent (notify.MaxAge).
	Stale bool
}

// alertsView is the Alerts page.
type alertsView struct {
	Alerts []alertRow
	Shown  int
	// Notify names the notification URLs by scheme and host; none: alerts
	// are not sent.
	Notify []string
}

// alertState is the state whose colour an event's badge takes.
func alertState(event string) millrace.State {
	switch event {
	case ledger.EventFailed:
		return millrace.StateFailed
	case ledger.EventRecovered:
		return millrace.StateSucceeded
	case ledger.EventLate:
		return millrace.StateQueued
	case ledger.EventCancelled:
		return millrace.StateCancelled
	}
	return millrace.StateMissing
}

// handleAlerts serves "GET /alerts": the newest alerts, with the outcome of
// their delivery to each notification URL, so that a broken webhook shows.
func (s *Server) handleAlerts(w http.ResponseWriter, r *http.Request) {
	alerts, err := s.cfg.Ledger.Alerts(r.Context(), alertsShown)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	v := alertsView{Alerts: make([]alertRow, len(alerts)), Shown: alertsShown, Notify: s.cfg.Notify}
	for i, a := range alerts {
		v.Alerts[i] = alertRow{Alert: a, State: alertState(a.Event), Path: partitionPath(a.Pipeline, a.Partition),
			Label: millrace.PartitionLabel(a.Partition), Stale: s.cfg.Orchestrator.Now().Sub(a.At) > notify.MaxAge}
	}
	s.render(w, r, http.StatusOK, "alerts", v)
}

// handleAPIAlerts serves "GET /api/alerts": the newest alerts, newest
// first, with their deliveries.
func (s *Server) handleAPIAlerts(w http.ResponseWriter, r *http.Request) {
	alerts, err := s.cfg.Ledger.Alerts(r.Context(), alertsShown)
	if err != nil {
		s.apiError(w, r, err)
		return
	}
	if alerts == nil {
		alerts = []ledger.Alert{}
	}
	writeJSON(w, http.StatusOK, alerts)
}
