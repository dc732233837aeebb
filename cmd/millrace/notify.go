package main

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/riverqueue/river"
	"github.com/spf13/cobra"

	"github.com/millrace/millrace/notify"
	"github.com/millrace/millrace/orchestrator"
	"github.com/millrace/millrace/warehouse"
)

// notifyCommand returns "millrace notify" and its subcommand "test".
func (m *Main) notifyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "notify",
		Short: "Alerts sent to MILLRACE_NOTIFY_URL",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "test",
		Short: "Send a test alert to every notification URL",
		Long: `Sends a test alert (event "test", pipeline "millrace") in
MILLRACE_NOTIFY_FORMAT to every URL of MILLRACE_NOTIFY_URL, and prints for
each (by its scheme and host only: the URL may hold a secret) ok, or why it
failed. Exits non-zero if any failed. Records nothing and needs no database.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := m.config.notifier(m.logger)
			if err != nil {
				return err
			}
			if len(n.URLs) == 0 {
				return errors.New("no notification URL: set MILLRACE_NOTIFY_URL (comma-separated webhook URLs)")
			}
			n.Now = m.Now
			var failed int
			for _, r := range n.Test(cmd.Context()) {
				if r.Err != nil {
					failed++
					fmt.Fprintf(cmd.OutOrStdout(), "%s: failed: %v\n", r.Target, r.Err)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", r.Target)
			}
			if failed > 0 {
				return fmt.Errorf("the test alert failed for %d of %d notification URLs", failed, len(n.URLs))
			}
			return nil
		},
	})
	return cmd
}

// startNotifier delivers the alerts of the database to the configured
// URLs (if any) until the returned stop is called: every notify.Interval,
// and as soon as a job of this process ends (a run that failed for good
// or recovered has just recorded its alert). Call it before o starts.
func (m *Main) startNotifier(ctx context.Context, n *notify.Notifier, w *warehouse.Warehouse, o *orchestrator.Orchestrator) (stop func()) {
	if len(n.URLs) == 0 {
		return func() {}
	}
	n.Pool, n.Now = w.Pool(), m.Now
	labels := make([]string, len(n.URLs))
	for i, u := range n.URLs {
		labels[i] = notify.Label(u)
	}
	m.logger.Info("sending alerts", "targets", labels, "format", n.Format)
	return runWoken(ctx, o, n.Run)
}

// runWoken runs run in a goroutine until the returned stop is called,
// with a channel that receives when a job of o ends. stop waits for run
// to return.
func runWoken(ctx context.Context, o *orchestrator.Orchestrator, run func(ctx context.Context, wake <-chan struct{})) (stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	events, unsubscribe := o.Client().Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled)
	wake := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-events:
				if !ok {
					return
				}
				select {
				case wake <- struct{}{}:
				default: // a wake-up is pending already
				}
			}
		}
	})
	wg.Go(func() { run(ctx, wake) })
	return sync.OnceFunc(func() {
		cancel()
		unsubscribe()
		wg.Wait()
	})
}
