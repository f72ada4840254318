package attach

import (
	"mime"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/mailproxy/mailproxy/internal/store"
)

// Fetch modes of the wire contract (attachment fetch_mode).
const (
	ModeBase64     = "base64"
	ModeHTTPURL    = "http_url"
	ModeFilesystem = "filesystem"
	ModeEndpoint   = "endpoint"
)

// source is where one attachment comes from, after mode detection.
type source struct {
	mode string // one of the Mode constants
	url  string // http_url: the URL to fetch
	// post is set by the "[<url>]<params>" form with non-empty params: the
	// request is POST {"storage_path": params} instead of GET.
	post   bool
	params string
}

// resolveSource applies fetch_mode, or auto-detection when it is empty
// (attachments.md §1).
func resolveSource(att store.Attachment) (source, *Error) {
	path := att.StoragePath
	mode := strings.ToLower(strings.TrimSpace(att.FetchMode))
	if mode == "" {
		mode = detectMode(path)
	}
	switch mode {
	case ModeBase64, ModeFilesystem, ModeEndpoint:
		return source{mode: mode}, nil
	case ModeHTTPURL:
		if u, params, ok := bracketForm(path); ok {
			return source{mode: ModeHTTPURL, url: u, post: params != "", params: params}, nil
		}
		return source{mode: ModeHTTPURL, url: strings.TrimSpace(path)}, nil
	default:
		return source{}, permanent("Unknown fetch_mode: "+att.FetchMode, resultRejected)
	}
}

// detectMode implements auto-detection: base64: prefix, http(s) URL or the
// bracket form, a leading slash, else the tenant's endpoint.
func detectMode(path string) string {
	lower := strings.ToLower(path)
	switch {
	case strings.HasPrefix(path, "base64:"):
		return ModeBase64
	case strings.HasPrefix(lower, "http://"), strings.HasPrefix(lower, "https://"):
		return ModeHTTPURL
	case isBracketForm(path):
		return ModeHTTPURL
	case strings.HasPrefix(path, "/"):
		return ModeFilesystem
	default:
		return ModeEndpoint
	}
}

func isBracketForm(path string) bool {
	_, _, ok := bracketForm(path)
	return ok
}

// bracketForm splits "[<url>]<params>".
func bracketForm(path string) (url, params string, ok bool) {
	if !strings.HasPrefix(path, "[") {
		return "", "", false
	}
	end := strings.IndexByte(path, ']')
	if end < 0 {
		return "", "", false
	}
	return strings.TrimSpace(path[1:end]), path[end+1:], true
}

var md5Marker = regexp.MustCompile(`\{MD5:([a-fA-F0-9]+)\}`)
var underscores = regexp.MustCompile(`_+`)

// CleanFilename removes an "{MD5:<hex>}" marker from a filename and tidies
// the underscores around it: "report_{MD5:abc}.pdf" → "report.pdf", "abc".
// The marker's hex is returned lowercased ("" when there is none).
func CleanFilename(filename string) (clean, markerMD5 string) {
	if m := md5Marker.FindStringSubmatch(filename); m != nil {
		markerMD5 = strings.ToLower(m[1])
		filename = md5Marker.ReplaceAllString(filename, "")
	}
	filename = underscores.ReplaceAllString(filename, "_")
	filename = strings.Trim(filename, "_")
	filename = strings.ReplaceAll(filename, "_.", ".")
	return filename, markerMD5
}

// commonType backs up the platform's MIME table, which may be missing in
// small containers, for the attachment types mail commonly carries.
func commonType(ext string) string {
	switch ext {
	case ".txt":
		return "text/plain"
	case ".csv":
		return "text/csv"
	case ".ics":
		return "text/calendar"
	case ".eml":
		return "message/rfc822"
	case ".zip":
		return "application/zip"
	case ".gz":
		return "application/gzip"
	case ".tar":
		return "application/x-tar"
	case ".7z":
		return "application/x-7z-compressed"
	case ".rtf":
		return "application/rtf"
	case ".doc":
		return "application/msword"
	case ".docx":
		return "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
	case ".xls":
		return "application/vnd.ms-excel"
	case ".xlsx":
		return "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	case ".ppt":
		return "application/vnd.ms-powerpoint"
	case ".pptx":
		return "application/vnd.openxmlformats-officedocument.presentationml.presentation"
	case ".odt":
		return "application/vnd.oasis.opendocument.text"
	case ".ods":
		return "application/vnd.oasis.opendocument.spreadsheet"
	case ".p7m":
		return "application/pkcs7-mime"
	case ".p7s":
		return "application/pkcs7-signature"
	case ".tif":
		return "image/tiff"
	case ".tiff":
		return "image/tiff"
	case ".bmp":
		return "image/bmp"
	case ".heic":
		return "image/heic"
	case ".mp3":
		return "audio/mpeg"
	case ".wav":
		return "audio/wav"
	case ".mp4":
		return "video/mp4"
	}
	return ""
}

// resolveMimeType returns mime_type when it names a type ("x/y"), else a guess
// from the filename's extension, else application/octet-stream.
func resolveMimeType(declared, filename string) string {
	if strings.Contains(declared, "/") {
		return strings.TrimSpace(declared)
	}
	ext := strings.ToLower(filepath.Ext(filename))
	if ext == "" {
		return "application/octet-stream"
	}
	if t := mime.TypeByExtension(ext); t != "" {
		if mediaType, _, err := mime.ParseMediaType(t); err == nil {
			return mediaType
		}
		return t
	}
	if t := commonType(ext); t != "" {
		return t
	}
	return "application/octet-stream"
}
