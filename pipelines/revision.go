package pipelines

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"slices"
	"testing/fstest"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"

	"github.com/millrace/millrace/pipelines/builtin"
	"github.com/millrace/millrace/warehouse"
)

// File is one file of a folder of pipelines: its path in the folder and its
// text.
type File struct {
	Path string `json:"path"`
	Text string `json:"text"`
}

// Limits on a folder of pipelines, which a person or a tool writes and
// which is stored in the database when applied: a file larger than
// MaxFileBytes, or a folder larger than MaxFolderBytes, is refused.
const (
	MaxFileBytes   = 1 << 20
	MaxFolderBytes = 16 << 20
)

// Revision is a folder of pipeline files as applied to an installation
// (`millrace pipelines apply`), stored in millrace.definitions: every
// process and command of the installation runs its newest revision.
type Revision struct {
	// Number counts the revisions applied, from 1; 0 is the embedded
	// built-ins of a process to which no revision was applied yet.
	Number int64 `json:"revision"`
	// Hash is the SHA-256 of the files (Folder.Hash).
	Hash string `json:"sha256"`
	// Source says where the files came from: a folder's path, or
	// "built-in".
	Source    string    `json:"source"`
	AppliedBy string    `json:"applied_by,omitempty"`
	AppliedAt time.Time `json:"applied_at,omitzero"`
	Files     []File    `json:"files,omitempty"`
}

// SourceBuiltin is the Source of a revision of the embedded built-ins.
const SourceBuiltin = "built-in"

// Builtin returns the revision of the embedded built-ins, not applied yet.
func Builtin() Revision {
	f, errs := ReadFolder(builtin.FS)
	if len(errs) > 0 {
		panic("the built-in pipeline files do not check:\n" + errs.Error())
	}
	return Revision{Hash: f.Hash(), Source: SourceBuiltin, Files: f.Files()}
}

// Names returns the names of the revision's pipelines, in the order of
// their files (none when its files do not check).
func (r Revision) Names() []string {
	f, problems := ReadFolder(r.FS())
	if len(problems) > 0 {
		return nil
	}
	names := make([]string, len(f.Specs))
	for i, s := range f.Specs {
		names[i] = s.Name
	}
	return names
}

// FS returns the revision's files as a folder, for ReadFolder.
func (r Revision) FS() fs.FS {
	m := fstest.MapFS{}
	for _, f := range r.Files {
		m[f.Path] = &fstest.MapFile{Data: []byte(f.Text), Mode: 0o644}
	}
	return m
}

// Files returns every file of the folder that its pipelines use (the
// pipeline files, millrace.yaml, the SQL files they name and inputs.lock),
// sorted by path.
func (f *Folder) Files() []File {
	out := make([]File, 0, len(f.files))
	for path, text := range f.files {
		out = append(out, File{Path: path, Text: text})
	}
	slices.SortFunc(out, func(a, b File) int {
		switch {
		case a.Path < b.Path:
			return -1
		case a.Path > b.Path:
			return 1
		}
		return 0
	})
	return out
}

// Hash returns the SHA-256, in hex, of the folder's files, paths included:
// two folders with the same hash declare the same pipelines.
func (f *Folder) Hash() string {
	h := sha256.New()
	for _, file := range f.Files() {
		fmt.Fprintf(h, "%d:%s%d:%s", len(file.Path), file.Path, len(file.Text), file.Text)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// definition returns the files of spec s: its own and the SQL it names.
func (f *Folder) definition(s *Spec) []File {
	files := []File{{Path: s.file, Text: f.files[s.file]}}
	for _, t := range s.Tables.Values {
		if t.SQL != "" {
			files = append(files, File{Path: t.SQL, Text: f.sql[t.SQL]})
		}
	}
	return files
}

// specHash returns what identifies the data spec s builds: its fields
// less positions, descriptions, former names and the words of errors, and
// the text of its SQL. A change of a description reaches the tables'
// COMMENTs at their next publication and makes no month stale; any other
// change does ("definition changed").
func (f *Folder) specHash(s *Spec) string {
	h := sha256.New()
	b, err := json.Marshal(canonical(reflect.ValueOf(*s)))
	if err != nil {
		// canonical makes maps, slices and scalars only.
		panic(fmt.Sprintf("hash pipeline %s: %v", s.Name, err))
	}
	h.Write(b)
	for _, t := range s.Tables.Values {
		if t.SQL != "" {
			fmt.Fprintf(h, "\x00%s\x00%s", t.SQL, f.sql[t.SQL])
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// notBehaviour are the fields of the specs that change no data.
var notBehaviour = map[string]bool{"Pos": true, "Description": true, "Formerly": true, "Reason": true}

// canonical returns v as maps, slices and scalars for JSON, leaving out
// unexported fields and those of notBehaviour.
func canonical(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return canonical(v.Elem())
	case reflect.Struct:
		out := map[string]any{}
		for i := range v.NumField() {
			sf := v.Type().Field(i)
			if !sf.IsExported() || notBehaviour[sf.Name] {
				continue
			}
			out[sf.Name] = canonical(v.Field(i))
		}
		return out
	case reflect.Slice, reflect.Array:
		out := make([]any, v.Len())
		for i := range v.Len() {
			out[i] = canonical(v.Index(i))
		}
		return out
	case reflect.Map:
		out := map[string]any{}
		for it := v.MapRange(); it.Next(); {
			out[fmt.Sprint(it.Key().Interface())] = canonical(it.Value())
		}
		return out
	}
	return v.Interface()
}

// Querier is what reads a revision: a pool, a connection or a transaction.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ErrNoRevision is returned, wrapped, by LatestRevision when no revision
// was applied to the installation yet.
var ErrNoRevision = errors.New("no revision of the pipelines applied")

// LatestRevision returns the newest revision applied, files included, or
// an error wrapping ErrNoRevision.
func LatestRevision(ctx context.Context, q Querier) (Revision, error) {
	return readRevision(ctx, q, `WHERE revision = (SELECT max(revision) FROM millrace.definitions)`)
}

// ReadRevision returns revision n, files included.
func ReadRevision(ctx context.Context, q Querier, n int64) (Revision, error) {
	return readRevision(ctx, q, `WHERE revision = $1`, n)
}

// readRevision reads the revision that where selects.
func readRevision(ctx context.Context, q Querier, where string, args ...any) (Revision, error) {
	var r Revision
	err := q.QueryRow(ctx, `SELECT revision, sha256, source, applied_by, applied_at, files FROM millrace.definitions `+where, args...).
		Scan(&r.Number, &r.Hash, &r.Source, &r.AppliedBy, &r.AppliedAt, &r.Files)
	if errors.Is(err, pgx.ErrNoRows) || warehouse.PgCode(err) == pgerrcode.UndefinedTable {
		// Not set up yet, or by a millrace before declared pipelines.
		return Revision{}, ErrNoRevision
	}
	if err != nil {
		return Revision{}, fmt.Errorf("read the applied pipelines: %w", err)
	}
	return r, nil
}

// LatestRevisionNumber returns the number of the newest revision applied,
// 0 for none: what a process polls to learn of a new one.
func LatestRevisionNumber(ctx context.Context, q Querier) (int64, error) {
	var n int64
	err := q.QueryRow(ctx, `SELECT coalesce(max(revision), 0) FROM millrace.definitions`).Scan(&n)
	if warehouse.PgCode(err) == pgerrcode.UndefinedTable {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the newest revision of the pipelines: %w", err)
	}
	return n, nil
}

// StoreRevision records r in tx as the newest revision, with the hash of
// each of its pipelines (list) and the names it retires, and returns it
// with its number and time.
func StoreRevision(ctx context.Context, tx pgx.Tx, r Revision, list []Pipeline, retired []string) (Revision, error) {
	hashes := map[string]string{}
	for _, p := range list {
		hashes[p.Name] = p.Hash
	}
	if retired == nil {
		retired = []string{}
	}
	err := tx.QueryRow(ctx, `INSERT INTO millrace.definitions (sha256, source, files, pipelines, retired, applied_by)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING revision, applied_at`, r.Hash, r.Source, r.Files, hashes, retired, r.AppliedBy).
		Scan(&r.Number, &r.AppliedAt)
	if err != nil {
		return Revision{}, fmt.Errorf("record the revision of the pipelines: %w", err)
	}
	return r, nil
}

// Reshaped returns the tables that pipeline p keeps across runs (a
// MonthlyLoad's partitioned table and its aggregates, whose months are
// replaced one at a time) whose columns, types, nullability, key or
// partition column differ in q, a later definition of it. Applying such a
// change would leave the months loaded under the old shape beside new ones:
// it is refused (a table built whole at each run takes any change).
func Reshaped(p, q Pipeline) []string {
	after := map[string]warehouse.Table{}
	for _, t := range q.exec.tables() {
		after[t.Name] = t
	}
	var out []string
	for _, t := range p.exec.tables() {
		u, ok := after[t.Name]
		if (t.PartitionBy == "" && !t.InPlace) || !ok {
			continue
		}
		if !slices.Equal(t.Columns, u.Columns) || !slices.Equal(t.Key, u.Key) || t.PartitionBy != u.PartitionBy {
			out = append(out, t.Name)
		}
	}
	return out
}
