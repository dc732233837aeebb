package main

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"
)

// healthcheckCommand returns "millrace healthcheck", the container's
// health check: it asks the local server's /healthz.
func (m *Main) healthcheckCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "healthcheck",
		Short: "Exit 0 when the local millrace server and its database answer",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, port, err := net.SplitHostPort(m.config.HTTPAddr)
			if err != nil {
				return fmt.Errorf("MILLRACE_HTTP_ADDR=%q: %w", m.config.HTTPAddr, err)
			}
			client := &http.Client{Timeout: 3 * time.Second}
			resp, err := client.Get("http://" + net.JoinHostPort("127.0.0.1", port) + "/healthz")
			if err != nil {
				return fmt.Errorf("health check: %w", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("health check: %s", resp.Status)
			}
			return nil
		},
	}
}
