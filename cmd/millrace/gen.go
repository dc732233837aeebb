package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/millrace/millrace"
	"github.com/millrace/millrace/gen"
)

// genCommand returns "millrace gen --out DIR ...".
func (m *Main) genCommand() *cobra.Command {
	var (
		out, from, to string
		cfg           gen.Config
	)
	cmd := &cobra.Command{
		Use:   "gen --out DIR",
		Short: "Generate a bucket with the real layout, schema and distributions",
		Long: `Writes a deterministic bucket into DIR: customer_profiles.csv,
customer_activity.csv, labels.csv, stores.csv and sales/YYYY-MM-01/sales.csv
for every month from --from to --to, with the real files' schema and
distributions. The same flags give the same bytes. Point MILLRACE_SOURCE at
DIR to load it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if cfg.From, err = millrace.ParseMonth(from); err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			if cfg.To, err = millrace.ParseMonth(to); err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			sum, err := gen.Write(cmd.Context(), out, cfg)
			if err != nil {
				return err
			}
			var rows, bytes int64
			for _, f := range sum.Files {
				rows += f.Rows
				bytes += f.Bytes
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d files, %d rows, %d bytes to %s\n", len(sum.Files), rows, bytes, out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "directory to write the bucket into (created if missing)")
	f.IntVar(&cfg.Customers, "customers", gen.DefaultCustomers, "number of customers")
	f.StringVar(&from, "from", "2020-01", "first month of sales, YYYY-MM")
	f.StringVar(&to, "to", "2029-12", "last month of sales, YYYY-MM")
	f.IntVar(&cfg.SalesPerMonth, "sales-per-month", gen.DefaultSalesPerMonth, "mean number of sales in a month")
	f.Uint64Var(&cfg.Seed, "seed", gen.DefaultSeed, "random seed")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}
