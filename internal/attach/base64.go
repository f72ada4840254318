package attach

import (
	"encoding/base64"
	"strings"
)

// decodeBase64 decodes inline content: a leading "base64:" is stripped,
// surrounding whitespace and line breaks removed, missing "=" padding added,
// then the standard alphabet is decoded (anything else is an error).
func decodeBase64(storagePath, name string, limit int64) ([]byte, *Error) {
	s := strings.TrimSpace(storagePath)
	s = strings.TrimPrefix(s, "base64:")
	s = strings.TrimSpace(s)
	s = strings.NewReplacer("\r", "", "\n", "").Replace(s)
	if rem := len(s) % 4; rem != 0 {
		s += strings.Repeat("=", 4-rem)
	}
	if decoded := int64(base64.StdEncoding.DecodedLen(len(s))); decoded > limit+2 {
		// Padding may shorten the result by two bytes at most.
		return nil, sizeError(name, decoded, limit)
	}
	data, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, permanent("Invalid base64 content: "+err.Error(), resultRejected)
	}
	if err := checkSize(data, name, limit); err != nil {
		return nil, err
	}
	return data, nil
}
