package runtime

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gong-proxy/gong/runtime/conf"
	"github.com/gong-proxy/gong/runtime/store/postgres"
)

// ConfigCacheFile, in the prefix, is the declarative configuration a
// node last built from its database, gzipped JSON: a node started while
// the database does not answer starts from it, as Kong's data planes
// start from their config.cache.json.gz. It holds certificates' keys,
// so only its owner may read it.
const ConfigCacheFile = "config.cache.json.gz"

// maxConfigCache bounds the cache read back at start (decompressed), as
// the declarative configurations the Admin API accepts are bounded.
const maxConfigCache = 1 << 30

// configCachePath is where c's node keeps its cache.
func configCachePath(c *conf.Config) string { return filepath.Join(c.Prefix, ConfigCacheFile) }

// writeConfigCache replaces the cache with doc, atomically (a reader
// never sees half a file) and with mode 0600.
func writeConfigCache(c *conf.Config, doc []byte) error {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(doc); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	f, err := os.CreateTemp(c.Prefix, ConfigCacheFile+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after the rename, a no-op
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), configCachePath(c))
}

// readConfigCache returns the cached document, and nil without a cache.
func readConfigCache(c *conf.Config) ([]byte, error) {
	f, err := os.Open(configCachePath(c))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", configCachePath(c), err)
	}
	doc, err := io.ReadAll(io.LimitReader(zr, maxConfigCache+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", configCachePath(c), err)
	}
	if len(doc) > maxConfigCache {
		return nil, fmt.Errorf("%s: larger than %d bytes once decompressed", configCachePath(c), maxConfigCache)
	}
	return doc, nil
}

// openOffline starts a node whose database did not answer (unreachable
// is why) from its configuration cache; without a cache it fails, saying
// so. The node reports the database unreachable and rebuilds from it
// once it answers.
func (s *Server) openOffline(c *conf.Config, unreachable error) (*postgres.Source, []byte, error) {
	doc, err := readConfigCache(c)
	if err != nil {
		return nil, nil, fmt.Errorf("%v; reading the configuration cache: %w", unreachable, err)
	}
	if doc == nil {
		return nil, nil, fmt.Errorf("%v; the node cannot start without its database: no configuration cached in %s by an earlier run", unreachable, configCachePath(c))
	}
	db, err := postgres.OfflineSource(c.Database, s.nodeID, s.log)
	if err != nil {
		return nil, nil, err
	}
	s.log.Warn(fmt.Sprintf("database is unreachable (%v): starting from the configuration cached in %s; the node catches up once the database answers", unreachable, configCachePath(c)))
	return db, doc, nil
}
