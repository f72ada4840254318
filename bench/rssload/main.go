// Command rssload measures the peak memory (VmHWM) of a running mail-proxy
// under the two loads of issue 11.4: concurrent large add-messages
// requests, and one large GET /messages listing. It is a measuring tool,
// not a test: run it against a fresh `mail-proxy serve` (the high-water
// mark counts from the process start) and read the figures it prints.
//
//	rssload -url http://127.0.0.1:8765 -token T -pid PID add -mb 40 -n 4
//	rssload -url http://127.0.0.1:8765 -token T -pid PID fill -mb 300 && rssload ... list
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8765", "mail-proxy API")
	token := flag.String("token", os.Getenv("GMP_API_TOKEN"), "admin token")
	pid := flag.Int("pid", 0, "the serve process, whose /proc status is read")
	tenant := flag.String("tenant", "default", "tenant of the messages")
	account := flag.String("account", "bench", "account of the messages")
	mb := flag.Int("mb", 40, "add: body size of each request; fill: total payload to store")
	n := flag.Int("n", 4, "add: concurrent requests")
	flag.Parse()
	if flag.NArg() != 1 || *pid == 0 {
		fmt.Fprintln(os.Stderr, "usage: rssload -pid PID [flags] add|fill|list")
		os.Exit(2)
	}
	c := client{url: *url, token: *token}
	fmt.Printf("before: %s\n", memory(*pid))
	start := time.Now()
	switch flag.Arg(0) {
	case "add": // n concurrent requests of one message with an mb-sized body each
		var wg sync.WaitGroup
		for i := range *n {
			wg.Go(func() {
				body := strings.Repeat("x", *mb<<20)
				status, _ := c.post("/commands/add-messages", addBody(fmt.Sprintf("big-%d-%d", time.Now().UnixNano(), i), *tenant, *account, body))
				fmt.Printf("request %d: %d MB body: HTTP %d\n", i, *mb, status)
			})
		}
		wg.Wait()
	case "fill": // about mb MB of messages of 100 KiB, 50 per request
		body := strings.Repeat("y", 100<<10)
		total := *mb << 20 / len(body)
		for i := 0; i < total; i += 50 {
			var msgs []any
			for j := i; j < min(i+50, total); j++ {
				msgs = append(msgs, message(fmt.Sprintf("fill-%06d", j), *tenant, *account, body))
			}
			b, _ := json.Marshal(map[string]any{"messages": msgs})
			if status, out := c.post("/commands/add-messages", b); status != 200 {
				fmt.Fprintf(os.Stderr, "fill: HTTP %d: %.200s\n", status, out)
				os.Exit(1)
			}
		}
		fmt.Printf("stored %d messages of %d KiB\n", total, len(body)>>10)
	case "list":
		req, _ := http.NewRequest("GET", c.url+"/messages?tenant_id="+*tenant, nil)
		req.Header.Set("X-API-Token", c.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		fmt.Printf("listing: HTTP %d, %d MB (%v)\n", resp.StatusCode, n>>20, err)
	default:
		fmt.Fprintln(os.Stderr, "unknown load", flag.Arg(0))
		os.Exit(2)
	}
	fmt.Printf("after %.1fs: %s\n", time.Since(start).Seconds(), memory(*pid))
}

func message(id, tenant, account, body string) map[string]any {
	return map[string]any{"id": id, "tenant_id": tenant, "account_id": account, "from": "a@example.com",
		"to": "b@example.com", "subject": "memory", "body": body}
}

func addBody(id, tenant, account, body string) []byte {
	b, _ := json.Marshal(map[string]any{"messages": []any{message(id, tenant, account, body)}})
	return b
}

type client struct{ url, token string }

func (c client) post(path string, body []byte) (int, []byte) {
	req, _ := http.NewRequest("POST", c.url+path, bytes.NewReader(body))
	req.Header.Set("X-API-Token", c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 0, nil
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// memory is the process's current and peak resident set, from /proc.
func memory(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err.Error()
	}
	var rss, hwm string
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rss = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			hwm = strings.TrimSpace(v)
		}
	}
	return "RSS " + rss + ", peak " + hwm
}
