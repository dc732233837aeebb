package web

import (
	"bufio"
	"strconv"
	"strings"
)

// logRecord is one line of a run's log: slog's text format,
// "time=... level=INFO msg=... key=value ...".
type logRecord struct {
	Time, Level, Msg string
	// Fields are the other key=value pairs, without those every line of
	// the run has (pipeline, partition, run_id, attempt).
	Fields []logField
}

// logField is one key=value of a log line.
type logField struct{ Key, Value string }

// runFields are the fields each line of a run's log carries.
var runFields = map[string]bool{"pipeline": true, "partition": true, "run_id": true, "attempt": true}

// logLevels are the levels a log can be filtered by, from the most detailed.
var logLevels = []string{"DEBUG", "INFO", "WARN", "ERROR"}

// levelRank orders levels; an unknown level ranks as INFO.
func levelRank(level string) int {
	for i, l := range logLevels {
		if strings.EqualFold(l, level) {
			return i
		}
	}
	return 1
}

// parseLog reads a run's log into records, keeping those at minLevel or
// above ("" keeps all). A line that is not key=value is kept whole as
// its message.
func parseLog(text, minLevel string) []logRecord {
	min := 0
	if minLevel != "" {
		min = levelRank(minLevel)
	}
	var out []logRecord
	sc := bufio.NewScanner(strings.NewReader(text))
	// No line is too long: the whole log is in memory already.
	sc.Buffer(make([]byte, 64*1024), len(text)+1)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		rec := logRecord{Level: "INFO"}
		pairs, ok := splitPairs(line)
		if !ok {
			rec.Msg = line
		}
		for _, p := range pairs {
			switch {
			case p.Key == "time":
				rec.Time = p.Value
			case p.Key == "level":
				rec.Level = p.Value
			case p.Key == "msg":
				rec.Msg = p.Value
			case !runFields[p.Key]:
				rec.Fields = append(rec.Fields, p)
			}
		}
		if levelRank(rec.Level) >= min {
			out = append(out, rec)
		}
	}
	return out
}

// splitPairs splits a line of slog's text format into its key=value pairs;
// values may be quoted Go strings. It reports false for a line that is not
// in that format.
func splitPairs(line string) ([]logField, bool) {
	var out []logField
	for rest := strings.TrimSpace(line); rest != ""; rest = strings.TrimLeft(rest, " ") {
		eq := strings.IndexByte(rest, '=')
		if eq <= 0 || strings.ContainsAny(rest[:eq], " \"") {
			return nil, false
		}
		key, val := rest[:eq], rest[eq+1:]
		if strings.HasPrefix(val, `"`) {
			q, err := strconv.QuotedPrefix(val)
			if err != nil {
				return nil, false
			}
			v, _ := strconv.Unquote(q)
			out = append(out, logField{key, v})
			rest = val[len(q):]
			continue
		}
		end := strings.IndexByte(val, ' ')
		if end < 0 {
			end = len(val)
		}
		out = append(out, logField{key, val[:end]})
		rest = val[end:]
	}
	return out, len(out) > 0
}
