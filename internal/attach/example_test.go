package attach_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/mailproxy/mailproxy/internal/attach"
	"github.com/mailproxy/mailproxy/internal/metrics"
	"github.com/mailproxy/mailproxy/internal/store"
)

// A message's attachments come back cleaned and typed, or not at all.
func ExampleFetcher_FetchAll() {
	f, err := attach.New(attach.Options{MemoryMaxBytes: 50 << 20, Metrics: metrics.New()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	tenant := store.Tenant{ID: "acme"}

	got, err := f.FetchAll(context.Background(), tenant, []store.Attachment{
		{Filename: "hello_{MD5:5d41402abc4b2a76b9719d911017c592}.txt", StoragePath: "base64:aGVsbG8"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s %s %q\n", got[0].Filename, got[0].MimeType, got[0].Data)

	_, err = f.FetchAll(context.Background(), tenant, []store.Attachment{
		{Filename: "notes.txt", StoragePath: "/srv/notes.txt"},
	})
	var fetchErr *attach.Error
	if errors.As(err, &fetchErr) {
		fmt.Println(fetchErr, "- temporary:", fetchErr.Temporary)
	}
	// Output:
	// hello.txt text/plain "hello"
	// Attachment fetch failed for notes.txt: Filesystem attachments are disabled - temporary: false
}
