package httpapi

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
)

// web holds the stream browser: one HTML page, one script, one stylesheet.
// Nothing is fetched from elsewhere, so it works offline.
//
//go:embed web
var web embed.FS

type asset struct {
	body  []byte
	ctype string
	etag  string
}

var (
	indexPage = mustAsset("index.html")
	assets    = map[string]asset{
		"app.js":  mustAsset("app.js"),
		"app.css": mustAsset("app.css"),
	}
)

func mustAsset(name string) asset {
	b, err := fs.ReadFile(web, "web/"+name)
	if err != nil {
		panic("httpapi: embedded asset missing: " + name)
	}
	sum := sha256.Sum256(b)
	ctype := map[string]string{
		".html": "text/html; charset=utf-8",
		".js":   "text/javascript; charset=utf-8",
		".css":  "text/css; charset=utf-8",
	}[path.Ext(name)]
	return asset{body: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}

// pageCSP lets the page run only its own script and style and talk only to
// this server.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// page serves the single page for / and every /ui/ path; the script reads
// the path and draws the view.
func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", pageCSP)
	serveAsset(w, r, indexPage)
}

func (s *Server) static(w http.ResponseWriter, r *http.Request) {
	a, ok := assets[r.PathValue("file")]
	if !ok {
		http.NotFound(w, r)
		return
	}
	serveAsset(w, r, a)
}

func serveAsset(w http.ResponseWriter, r *http.Request, a asset) {
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	if r.Header.Get("If-None-Match") == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	_, _ = w.Write(a.body)
}
