package main

// usageTemplate is cobra's usage template with the flags in two groups: a
// command's own flags first, then the installation's settings, which every
// command takes (the persistent flags of the root, each also a MILLRACE_*
// environment variable), under a heading of their own.
const usageTemplate = `Usage:{{if .Runnable}}
  {{.UseLine}}{{end}}{{if .HasAvailableSubCommands}}
  {{.CommandPath}} [command]{{end}}{{if gt (len .Aliases) 0}}

Aliases:
  {{.NameAndAliases}}{{end}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}

Available Commands:{{range .Commands}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{with .LocalNonPersistentFlags}}{{if .HasAvailableFlags}}

Flags:
{{.FlagUsages | trimTrailingWhitespaces}}{{end}}{{end}}{{if .HasParent}}{{template "installation" .InheritedFlags}}{{else}}{{template "installation" .PersistentFlags}}{{end}}{{if .HasAvailableSubCommands}}

Use "{{.CommandPath}} [command] --help" for more information about a command.{{end}}
{{define "installation"}}{{if .HasAvailableFlags}}

Installation flags (the same for every command; each also a MILLRACE_* environment variable):
{{.FlagUsages | trimTrailingWhitespaces}}{{end}}{{end}}`
