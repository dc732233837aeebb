package lineage

import (
	"crypto/sha1"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// runNamespace is the UUID namespace of millrace's run ids (RunID): a
// fixed random UUID.
var runNamespace = [16]byte{0x6b, 0x3e, 0x0f, 0x52, 0x9d, 0x1c, 0x4e, 0x8a, 0xb1, 0x47, 0x2c, 0x5d, 0x90, 0xe3, 0x71, 0x0a}

// RunID returns the OpenLineage run id of the ledger's attempt id in a job
// namespace: the name-based (version 5, SHA-1) UUID of "namespace/id" in a
// namespace of millrace's, so that every event of the attempt, from any
// process, carries the same one, and two installations with their own
// namespaces never share one.
func RunID(namespace string, id int64) string {
	h := sha1.New()
	h.Write(runNamespace[:])
	h.Write([]byte(namespace + "/" + strconv.FormatInt(id, 10)))
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x50 // version 5
	u[8] = u[8]&0x3f | 0x80 // RFC 9562 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// SourceDataset names a source file as OpenLineage does: for an S3 source
// ("s3://bucket/prefix/", as the source's String says) the namespace
// s3://bucket and the name the object's key; for a directory the namespace
// file://DIR and the name the key below it.
func SourceDataset(source, key string) Dataset {
	if rest, ok := strings.CutPrefix(source, "s3://"); ok {
		bucket, prefix, _ := strings.Cut(rest, "/")
		if prefix = strings.Trim(prefix, "/"); prefix != "" {
			key = prefix + "/" + key
		}
		return Dataset{Namespace: "s3://" + bucket, Name: key}
	}
	dir := strings.TrimPrefix(source, "file://")
	return Dataset{Namespace: "file://" + filepath.ToSlash(filepath.Clean(dir)), Name: key}
}

// Database is where the tables are, for their dataset names: the
// namespace postgres://host:port and the database's name.
type Database struct {
	Namespace string
	Name      string
}

// DatabaseOf returns the database of a connection's configuration, without
// its user or password. A Unix socket's host is localhost.
func DatabaseOf(c *pgconn.Config) Database {
	host := c.Host
	if host == "" || strings.HasPrefix(host, "/") {
		host = "localhost"
	}
	port := c.Port
	if port == 0 {
		port = 5432
	}
	return Database{Namespace: "postgres://" + net.JoinHostPort(host, strconv.Itoa(int(port))), Name: c.Database}
}

// Table returns the dataset of the table public.name: the name
// DATABASE.public.TABLE.
func (d Database) Table(name string) Dataset {
	return Dataset{Namespace: d.Namespace, Name: d.Name + ".public." + name}
}
