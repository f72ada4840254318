package store

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// RewriteAttachmentAuth calls fn on the auth object of every attachment of a
// stored payload and returns the payload re-encoded, other keys untouched,
// and whether there was any auth object. A payload without one is returned
// as it is, usually without being decoded (add-messages' hot path).
func RewriteAttachmentAuth(raw json.RawMessage, fn func(a *ClientAuth) error) (json.RawMessage, bool, error) {
	if !bytes.Contains(raw, []byte(`"auth"`)) {
		return raw, false, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, false, fmt.Errorf("decode payload: %w", err)
	}
	list, ok := top["attachments"]
	if !ok {
		return raw, false, nil
	}
	var atts []map[string]json.RawMessage
	if err := json.Unmarshal(list, &atts); err != nil {
		return nil, false, fmt.Errorf("decode payload attachments: %w", err)
	}
	changed := false
	for _, att := range atts {
		a, ok := att["auth"]
		if !ok || bytes.Equal(bytes.TrimSpace(a), []byte("null")) {
			continue
		}
		var ca ClientAuth
		if err := json.Unmarshal(a, &ca); err != nil {
			return nil, false, fmt.Errorf("decode attachment auth: %w", err)
		}
		if err := fn(&ca); err != nil {
			return nil, false, err
		}
		enc, err := json.Marshal(&ca)
		if err != nil {
			return nil, false, err
		}
		att["auth"] = enc
		changed = true
	}
	if !changed {
		return raw, false, nil
	}
	enc, err := json.Marshal(atts)
	if err != nil {
		return nil, false, err
	}
	top["attachments"] = enc
	out, err := json.Marshal(top)
	return out, err == nil, err
}
