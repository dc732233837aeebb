// Package builtin holds millrace's four pipelines of the specification as
// declared files: load_client_data, load_sales_data, process_data and
// sales_statistics, with their SQL, embedded in the binary. `millrace
// pipelines init DIR` writes them out as the start of a company's folder.
package builtin

import "embed"

// FS is the folder of the built-in pipelines.
//
//go:embed *.yaml *.lock process_data/*.sql sales_statistics/*.sql
var FS embed.FS
