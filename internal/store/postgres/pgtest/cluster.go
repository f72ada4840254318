package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a private PostgreSQL server made with initdb in a temporary
// directory, on its own loopback port, for tests that stop, restart or
// break the server without disturbing the shared one (issue 12.8).
type Cluster struct {
	t    testing.TB
	bin  string // directory of initdb, pg_ctl, postgres
	data string
	port int
	log  string
	as   []string // command prefix running as the postgres user when we are root
}

// NewCluster initialises and starts a private cluster; a cleanup stops it.
// Without the PostgreSQL server binaries (/usr/lib/postgresql/*/bin) the
// test is skipped loudly, or fails when MAILPROXY_TEST_PG_REQUIRED=1.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	bin := serverBin()
	if bin == "" {
		msg := "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin"
		if os.Getenv("MAILPROXY_TEST_PG_REQUIRED") == "1" {
			t.Fatalf("%s (MAILPROXY_TEST_PG_REQUIRED=1)", msg)
		}
		t.Skipf("*** %s: private-cluster test SKIPPED ***", msg)
	}
	dir, err := os.MkdirTemp("", "mailproxy-pgcluster-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, bin: bin, data: filepath.Join(dir, "data"), log: filepath.Join(dir, "server.log")}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if os.Geteuid() == 0 { // initdb refuses to run as root
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("*** running as root without a postgres user: private-cluster test SKIPPED (%v) ***", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		c.as = []string{"runuser", "-u", "postgres", "--"}
	}
	c.port = freePort(t)
	c.run("initdb", "-D", c.data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
	c.Start()
	t.Cleanup(func() {
		// Stopped already (a test that ends with the server down) is fine.
		argv := append(append([]string{}, c.as...), filepath.Join(c.bin, "pg_ctl"), "-D", c.data, "stop", "-m", "immediate")
		_ = exec.Command(argv[0], argv[1:]...).Run()
	})
	return c
}

// DSN is the cluster's postgres database.
func (c *Cluster) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// Start starts the server and waits until it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s -c fsync=off", c.port, c.data)
	c.pgctl("start", "-w", "-t", "60", "-l", c.log, "-o", opts)
}

// Stop shuts the server down (fast: sessions are terminated).
func (c *Cluster) Stop() {
	c.t.Helper()
	c.pgctl("stop", "-w", "-m", "fast")
}

// Restart stops and starts the server (fast shutdown).
func (c *Cluster) Restart() {
	c.t.Helper()
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s -c fsync=off", c.port, c.data)
	c.pgctl("restart", "-w", "-t", "60", "-m", "fast", "-l", c.log, "-o", opts)
}

func (c *Cluster) pgctl(args ...string) {
	c.t.Helper()
	c.run("pg_ctl", append([]string{"-D", c.data}, args...)...)
}

func (c *Cluster) run(tool string, args ...string) {
	c.t.Helper()
	argv := append(append([]string{}, c.as...), filepath.Join(c.bin, tool))
	argv = append(argv, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		logTail, _ := os.ReadFile(c.log)
		c.t.Fatalf("%s %s: %v\n%s\nserver log:\n%s", tool, strings.Join(args, " "), err, out, logTail)
	}
}

// serverBin is the newest /usr/lib/postgresql/<version>/bin with initdb.
func serverBin() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	return ""
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// freePort asks the kernel for a free loopback port.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
