// Package ui is the web dashboard's front end: a few static files (one page,
// one script, one style sheet) embedded in the binary and served under /ui/,
// so the dashboard works offline and needs no build step.
//
// The files hold no data. The page asks for a token (admin token or tenant
// key), keeps it in the browser's sessionStorage and calls the REST API with
// it (X-API-Token), so every read and action goes through the API's own auth
// and tenant scope; the page never filters for security.
package ui

import (
	"bytes"
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// securityHeaders keep the page's script the only script: the token lives in
// sessionStorage, so injected script is the threat. The page renders data with
// textContent only and loads nothing from elsewhere.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
	"X-Content-Type-Options": "nosniff",
	"X-Frame-Options":        "DENY",
	"Referrer-Policy":        "no-referrer",
	"Cache-Control":          "no-cache",
}

// file is one embedded asset.
type file struct {
	body        []byte
	contentType string
}

// Handler serves the dashboard's files for paths under /ui/ ("/ui/" is the
// page). Unknown paths get the API's JSON 404.
func Handler() http.Handler {
	files := map[string]file{}
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		files[strings.TrimPrefix(p, "assets/")] = file{body: body, contentType: ct}
		return nil
	})
	if err != nil { // the files are compiled in: this cannot fail at run time
		panic("ui: read embedded assets: " + err.Error())
	}
	started := time.Now()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/ui/")
		if name == "" {
			name = "index.html"
		}
		f, ok := files[name]
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"detail":"Not Found"}`))
			return
		}
		h := w.Header()
		for k, v := range securityHeaders {
			h.Set(k, v)
		}
		h.Set("Content-Type", f.contentType)
		http.ServeContent(w, r, name, started, bytes.NewReader(f.body))
	})
}
