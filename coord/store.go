package coord

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
	"go.yaml.in/yaml/v3"

	"github.com/shoal-scraper/shoal/config"
	"github.com/shoal-scraper/shoal/internal/zkdial"
)

// Store is a short-lived client for the job store and the member list: what
// `shoal jobs` and `shoal members` use. It is not a member.
type Store struct {
	conn  *zk.Conn
	paths paths
}

// Dial connects to ZooKeeper and waits for a session, at most timeout.
func Dial(servers []string, root string, timeout time.Duration) (*Store, error) {
	cfg := Config{Servers: servers, Root: root}
	cfg.setDefaults()
	connected := make(chan struct{}, 1)
	conn, _, err := zk.Connect(servers, timeout, zk.WithDialer(zkdial.Dialer(timeout)), zk.WithLogger(zkLogger{slog.New(slog.DiscardHandler)}), zk.WithLogInfo(false),
		zk.WithEventCallback(func(ev zk.Event) {
			if ev.Type == zk.EventSession && ev.State == zk.StateHasSession {
				select {
				case connected <- struct{}{}:
				default:
				}
			}
		}))
	if err != nil {
		return nil, fmt.Errorf("zookeeper %s: %w", strings.Join(servers, ","), err)
	}
	select {
	case <-connected:
	case <-time.After(timeout):
		conn.Close()
		return nil, fmt.Errorf("zookeeper %s: no session within %v", strings.Join(servers, ","), timeout)
	}
	return &Store{conn: conn, paths: paths{members: cfg.Root + "/members", slots: cfg.Root + "/slots", jobs: cfg.Root + "/jobs"}}, nil
}

// Close ends the session.
func (s *Store) Close() { s.conn.Close() }

// JobDoc is one job as stored: its name and its YAML.
type JobDoc struct {
	Name string
	YAML []byte
}

// ReadJobFile splits a job file into job documents and validates each with
// config/: the file is either one scrape_config, or a configuration with a
// scrape_configs list (each entry becomes its own job; a global section is
// an error, since jobs in ZooKeeper inherit the members' globals). Every
// problem in the file is returned, with its line.
func ReadJobFile(data []byte, source string) ([]JobDoc, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: empty file", source)
	}
	root := doc.Content[0]
	var items []*yaml.Node
	if root.Kind == yaml.MappingNode && hasKey(root, "scrape_configs") {
		for i := 0; i+1 < len(root.Content); i += 2 {
			switch k := root.Content[i].Value; k {
			case "scrape_configs":
				if root.Content[i+1].Kind != yaml.SequenceNode {
					return nil, fmt.Errorf("%s:%d: scrape_configs: want a list", source, root.Content[i+1].Line)
				}
				items = root.Content[i+1].Content
			default:
				return nil, fmt.Errorf("%s:%d: %s: a job file holds scrape_configs only (jobs in ZooKeeper inherit each member's global section)", source, root.Content[i].Line, k)
			}
		}
	} else {
		items = []*yaml.Node{root}
	}
	var (
		out  []JobDoc
		errs []error
		seen = map[string]bool{}
	)
	for _, it := range items {
		var b []byte
		if len(items) == 1 && it == root {
			b = data // a single job is stored byte for byte, comments included
		} else {
			var buf bytes.Buffer
			enc := yaml.NewEncoder(&buf)
			enc.SetIndent(2)
			if err := enc.Encode(it); err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: %w", source, it.Line, err))
				continue
			}
			b = buf.Bytes()
		}
		sc, err := config.ParseJob(b, source)
		if err != nil {
			if len(items) > 1 {
				err = fmt.Errorf("scrape_configs entry at line %d: %w", it.Line, err)
			}
			errs = append(errs, err)
			continue
		}
		if err := ValidJobName(sc.JobName); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", source, it.Line, err))
			continue
		}
		if seen[sc.JobName] {
			errs = append(errs, fmt.Errorf("%s:%d: job %q appears twice", source, it.Line, sc.JobName))
			continue
		}
		seen[sc.JobName] = true
		// Defaults the job would get from the default globals must be
		// valid too (a scrape_timeout above the default interval, say).
		if err := sc.SetDefaults(config.DefaultGlobalConfig()); err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, JobDoc{Name: sc.JobName, YAML: b})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func hasKey(m *yaml.Node, key string) bool {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return true
		}
	}
	return false
}

// ValidJobName checks that a job name can name a ZooKeeper node.
func ValidJobName(name string) error {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." || name == "zookeeper" {
		return fmt.Errorf("job_name %q cannot be stored in ZooKeeper: it must not be empty, contain '/', or be '.', '..' or 'zookeeper'", name)
	}
	return nil
}

// PutJobs writes jobs (created or replaced) in one transaction: all or
// nothing.
func (s *Store) PutJobs(jobs []JobDoc) error {
	if err := createPath(s.conn, s.paths.jobs); err != nil {
		return err
	}
	for attempt := 0; attempt < 5; attempt++ {
		var ops []any
		for _, j := range jobs {
			p := s.paths.job(j.Name)
			ok, st, err := s.conn.Exists(p)
			if err != nil {
				return fmt.Errorf("checking %s: %w", p, err)
			}
			if ok {
				ops = append(ops, &zk.SetDataRequest{Path: p, Data: j.YAML, Version: st.Version})
			} else {
				ops = append(ops, &zk.CreateRequest{Path: p, Data: j.YAML, Acl: zk.WorldACL(zk.PermAll)})
			}
		}
		_, err := s.conn.Multi(ops...)
		if errors.Is(err, zk.ErrNodeExists) || errors.Is(err, zk.ErrBadVersion) || errors.Is(err, zk.ErrNoNode) {
			continue // raced with another writer: look again
		}
		if err != nil {
			return fmt.Errorf("writing jobs: %w", err)
		}
		return nil
	}
	return errors.New("writing jobs: the job nodes kept changing under us")
}

// GetJob returns a job's YAML as stored.
func (s *Store) GetJob(name string) ([]byte, error) {
	if err := ValidJobName(name); err != nil {
		return nil, err
	}
	b, _, err := s.conn.Get(s.paths.job(name))
	if errors.Is(err, zk.ErrNoNode) {
		return nil, fmt.Errorf("no job %q in %s", name, s.paths.jobs)
	}
	return b, err
}

// ListJobs returns the job names, sorted, with an error for each job whose
// content is invalid (nil if valid).
func (s *Store) ListJobs() ([]string, map[string]error, error) {
	names, _, err := s.conn.Children(s.paths.jobs)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	sort.Strings(names)
	bad := map[string]error{}
	for _, n := range names {
		b, _, err := s.conn.Get(s.paths.job(n))
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if _, err := ParseJob(n, b, config.DefaultGlobalConfig(), s.paths.job(n)); err != nil {
			bad[n] = err
		}
	}
	return names, bad, nil
}

// RemoveJob deletes a job.
func (s *Store) RemoveJob(name string) error {
	if err := ValidJobName(name); err != nil {
		return err
	}
	err := s.conn.Delete(s.paths.job(name), -1)
	if errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("no job %q in %s", name, s.paths.jobs)
	}
	return err
}

// Members returns the registered members, by slot.
func (s *Store) Members() ([]Member, error) {
	ids, _, err := s.conn.Children(s.paths.members)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Member
	for _, id := range ids {
		b, _, err := s.conn.Get(path.Join(s.paths.members, id))
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, err
		}
		m, err := decodeMember(id, b)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Slot < out[j].Slot })
	return out, nil
}
