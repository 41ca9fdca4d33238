// Package pgtest runs a private PostgreSQL server for tests: the Debian
// package's binaries, a cluster made by initdb in a temporary folder, a
// private port on the loopback, and a password for the one (superuser)
// role, the way an appliance node would reach a production database.
//
// PostgreSQL refuses to run as root, so when the tests run as root (CI
// does) initdb and postgres run as the packaged "postgres" user, and the
// folder is given to that user. The server is stopped by Stop, and is
// asked to die with the process that started it.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Options tune the server.
type Options struct {
	// Durable keeps fsync on (benchmarks); tests run with fsync off, which
	// loses nothing unless the machine itself crashes.
	Durable bool
	// Log receives the server's log lines; nil discards them.
	Log func(line string)
}

// Server is a running PostgreSQL server.
type Server struct {
	Dir      string // the cluster's folder (data, socket, log)
	Port     int
	User     string
	Password string // the role's password; tests pass it through a file or env var

	cmd      *exec.Cmd
	done     chan struct{}
	stopOnce sync.Once
	mu       sync.Mutex
	dbs      int
}

// BinDir returns the folder of the newest installed PostgreSQL's server
// binaries (Debian: /usr/lib/postgresql/<version>/bin), or an error saying
// how to install them.
func BinDir() (string, error) {
	if d := os.Getenv("KEYHOLD_PG_BINDIR"); d != "" {
		return d, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	sort.Slice(matches, func(i, j int) bool { return pgVersion(matches[i]) > pgVersion(matches[j]) })
	for _, m := range matches {
		if _, err := os.Stat(filepath.Join(filepath.Dir(m), "initdb")); err == nil {
			return filepath.Dir(m), nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("pgtest: no PostgreSQL server binaries (apt-get install postgresql, or set KEYHOLD_PG_BINDIR)")
}

func pgVersion(path string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return v
}

// Start initialises a cluster in a new folder and starts the server on a
// free loopback port. Call Stop when done.
func Start(ctx context.Context, o Options) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	cred, err := runAs()
	if err != nil {
		return nil, err
	}
	// Under /tmp (not a test's private temp dir) so the postgres user can
	// reach it; the path stays short for the unix socket.
	dir, err := os.MkdirTemp("", "keyhold-pg-")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, User: "keyhold", Password: randomHex(16), done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			s.Stop()
		}
	}()
	data := filepath.Join(dir, "data")
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.Password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if cred != nil {
		for _, p := range []string{dir, pwfile} {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				return nil, err
			}
		}
	}
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", s.User, "--pwfile", pwfile,
		"--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgtest: initdb: %v\n%s", err, out)
	}
	os.Remove(pwfile)
	for attempt := 0; ; attempt++ {
		err := s.start(ctx, bin, data, cred, o)
		if err == nil {
			break
		}
		if attempt == 4 {
			return nil, err
		}
	}
	ok = true
	return s, nil
}

// start starts postgres on a free port and waits until it accepts
// connections.
func (s *Server) start(ctx context.Context, bin, data string, cred *syscall.Credential, o Options) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	fsync := "off"
	if o.Durable {
		fsync = "on"
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", s.Dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync="+fsync, "-c", "full_page_writes="+fsync,
		"-c", "max_connections=300", "-c", "shared_buffers=256MB", "-c", "logging_collector=off",
		"-c", "log_min_messages=warning", "-c", "dynamic_shared_memory_type=mmap")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGQUIT}
	logw := &lineWriter{fn: o.Log}
	cmd.Stdout, cmd.Stderr = logw, logw
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.Port = port
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("pgtest: postgres exited: %v: %s", err, logw.tail())
		default:
		}
		c, err := pgx.Connect(ctx, s.URL("postgres")+"&password="+s.Password)
		if err == nil {
			c.Close(ctx)
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("pgtest: postgres did not accept connections: %v: %s", err, logw.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.cmd = cmd
	go func() {
		<-exited
		close(s.done)
	}()
	return nil
}

// URL is the connection URL of a database of the server, without the
// password (the appliance reads that from a file or an env var).
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", s.User, s.Port, db)
}

// URLWithPassword is URL with the password in it, for test code that
// connects directly.
func (s *Server) URLWithPassword(db string) string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", s.User, s.Password, s.Port, db)
}

// CreateDatabase creates a new, empty database and returns its name.
func (s *Server) CreateDatabase(ctx context.Context) (string, error) {
	s.mu.Lock()
	s.dbs++
	name := fmt.Sprintf("t%d_%s", s.dbs, randomHex(4))
	s.mu.Unlock()
	c, err := pgx.Connect(ctx, s.URLWithPassword("postgres"))
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	return name, nil
}

// CreateSchema creates a new schema in the postgres database and returns
// the URL (without password) of that database with the schema as its
// search path: a fresh, empty location that is cheaper than a database.
func (s *Server) CreateSchema(ctx context.Context) (string, error) {
	s.mu.Lock()
	s.dbs++
	name := fmt.Sprintf("s%d_%s", s.dbs, randomHex(4))
	s.mu.Unlock()
	c, err := pgx.Connect(ctx, s.URLWithPassword("postgres"))
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		return "", err
	}
	return s.URL("postgres") + "&search_path=" + name, nil
}

// Stop stops the server (fast shutdown) and removes its folder.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		if s.cmd != nil {
			s.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-s.done:
			case <-time.After(20 * time.Second):
				s.cmd.Process.Kill()
				<-s.done
			}
		}
		if s.Dir != "" {
			os.RemoveAll(s.Dir)
		}
	})
}

// runAs returns the credential to run PostgreSQL with: the postgres user's
// when this process is root, none otherwise.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root needs the postgres user of the postgresql package: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// lineWriter passes the server's output to a function line by line and
// keeps the last lines for error messages.
type lineWriter struct {
	mu   sync.Mutex
	fn   func(string)
	buf  []byte
	last []string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		if w.fn != nil {
			w.fn(line)
		}
		w.last = append(w.last, line)
		if len(w.last) > 20 {
			w.last = w.last[1:]
		}
	}
	return len(p), nil
}

func (w *lineWriter) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.last, "\n")
}
