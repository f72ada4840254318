package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// issue is one 422 entry in the FastAPI/pydantic v2 shape.
type issue struct {
	Type  string          `json:"type" doc:"pydantic error type, e.g. missing, string_type, int_parsing"`
	Loc   []any           `json:"loc" doc:"where: body, query, path or header, then field names and list indexes"`
	Msg   string          `json:"msg"`
	Input json.RawMessage `json:"input,omitempty" doc:"the offending value, when one was given"`
	Ctx   map[string]any  `json:"ctx,omitempty"`
}

// pydantic's messages for the error types we produce.
const (
	msgMissing        = "Field required"
	msgStringType     = "Input should be a valid string"
	msgIntType        = "Input should be a valid integer"
	msgIntParsing     = "Input should be a valid integer, unable to parse string as an integer"
	msgIntFromFloat   = "Input should be a valid integer, got a number with a fractional part"
	msgIntSize        = "Unable to parse input string as an integer, exceeded maximum size"
	msgBoolType       = "Input should be a valid boolean"
	msgBoolParsing    = "Input should be a valid boolean, unable to interpret input"
	msgListType       = "Input should be a valid list"
	msgDictType       = "Input should be a valid dictionary"
	msgModelAttrs     = "Input should be a valid dictionary or object to extract fields from"
	msgExtraForbidden = "Extra inputs are not permitted"
	msgJSONInvalid    = "JSON decode error"
)

// jsonKind is the type of a raw JSON value, from its first byte.
type jsonKind int

const (
	kindNull jsonKind = iota
	kindString
	kindNumber
	kindBool
	kindObject
	kindArray
)

func kindOf(raw json.RawMessage) jsonKind {
	if len(raw) == 0 {
		return kindNull
	}
	switch raw[0] {
	case '"':
		return kindString
	case '{':
		return kindObject
	case '[':
		return kindArray
	case 't', 'f':
		return kindBool
	case 'n':
		return kindNull
	}
	return kindNumber
}

// jsonInput renders a Go value as an issue's input.
func jsonInput(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

// issues collects 422 entries.
type issues struct {
	list []issue
}

func (is *issues) add(typ, msg string, loc []any, input json.RawMessage, ctx map[string]any) {
	is.list = append(is.list, issue{Type: typ, Loc: loc, Msg: msg, Input: input, Ctx: ctx})
}

// missing records an absent field. input is what pydantic echoes: the
// enclosing object, or nil for JSON null (a missing query parameter or body).
func (is *issues) missing(loc []any, input json.RawMessage) {
	if input == nil {
		input = json.RawMessage("null")
	}
	is.add("missing", msgMissing, loc, input, nil)
}

// objectInput renders a decoded object as a missing entry's input. Members
// keep their raw values (secrets redacted: an answer never carries one);
// only their order may differ from the request.
func objectInput(m map[string]json.RawMessage) json.RawMessage {
	if m == nil {
		return nil
	}
	return redactJSON(jsonInput(m))
}

func (is *issues) valueError(loc []any, input json.RawMessage, text string) {
	is.add("value_error", "Value error, "+text, loc, input, map[string]any{"error": text})
}

func (is *issues) empty() bool { return len(is.list) == 0 }

// at appends path elements to a location, never sharing the backing array.
func at(loc []any, more ...any) []any {
	out := make([]any, 0, len(loc)+len(more))
	out = append(out, loc...)
	return append(out, more...)
}

// decodeJSONString decodes a raw JSON string, fast when it has no escapes.
func decodeJSONString(raw json.RawMessage) (string, error) {
	if len(raw) >= 2 && bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

// parseJSONBody decodes a request body that must be a JSON object into its
// top-level members. An empty or null body counts as {} when optional, else
// as a missing body.
func parseJSONBody(body []byte, optional bool) (map[string]json.RawMessage, *apiError) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		if optional {
			return map[string]json.RawMessage{}, nil
		}
		var is issues
		is.missing([]any{"body"}, nil)
		return nil, invalid(is.list)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		var is issues
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			is.add("json_invalid", msgJSONInvalid, []any{"body", syntaxOffset(body, syn)},
				json.RawMessage(`{}`), map[string]any{"error": syn.Error()})
		case errors.As(err, &typ):
			is.add("model_attributes_type", msgModelAttrs, []any{"body"}, json.RawMessage(trimmed), nil)
		default:
			// Truncated input ("unexpected end of JSON input") is not a SyntaxError.
			is.add("json_invalid", msgJSONInvalid, []any{"body", len(body)},
				json.RawMessage(`{}`), map[string]any{"error": err.Error()})
		}
		return nil, invalid(is.list)
	}
	if obj == nil { // the body was `null`
		if optional {
			return map[string]json.RawMessage{}, nil
		}
		var is issues
		is.missing([]any{"body"}, nil)
		return nil, invalid(is.list)
	}
	return obj, nil
}

// syntaxOffset is the byte offset of a JSON syntax error: encoding/json
// reports the number of bytes read, which includes the offending byte.
func syntaxOffset(body []byte, e *json.SyntaxError) int64 {
	off := e.Offset
	if off > 0 && off <= int64(len(body)) && strings.HasPrefix(e.Error(), "invalid character") {
		off--
	}
	return off
}

// fields reads the members of one JSON object and records an issue for
// every member of the wrong type. Absent and null members read as unset.
type fields struct {
	m   map[string]json.RawMessage
	loc []any
	is  *issues
}

func newFields(m map[string]json.RawMessage, loc []any, is *issues) fields {
	return fields{m: m, loc: loc, is: is}
}

// raw returns a member that is present and not null.
func (f fields) raw(name string) (json.RawMessage, bool) {
	v, ok := f.m[name]
	if !ok || kindOf(v) == kindNull {
		return nil, false
	}
	return v, true
}

// has reports whether the member is present at all (null included).
func (f fields) has(name string) bool {
	_, ok := f.m[name]
	return ok
}

// missingField records an absent member, echoing the enclosing object.
func (f fields) missingField(name string) { f.is.missing(at(f.loc, name), objectInput(f.m)) }

// require records a missing member; it reports whether the member is present.
func (f fields) require(name string) bool {
	if _, ok := f.m[name]; !ok {
		f.missingField(name)
		return false
	}
	return true
}

// str reads a string member. With required, absent is "missing" and null a
// string_type error. ok is false when unset or invalid.
func (f fields) str(name string, required bool) (string, bool) {
	v, present := f.m[name]
	if !present {
		if required {
			f.missingField(name)
		}
		return "", false
	}
	if kindOf(v) == kindNull && !required {
		return "", false
	}
	return f.strValue(v, at(f.loc, name))
}

func (f fields) strValue(v json.RawMessage, loc []any) (string, bool) {
	if kindOf(v) != kindString {
		f.is.add("string_type", msgStringType, loc, v, nil)
		return "", false
	}
	s, err := decodeJSONString(v)
	if err != nil {
		f.is.add("string_type", msgStringType, loc, v, nil)
		return "", false
	}
	return s, true
}

// optStr reads an optional string member as a pointer (nil when unset).
func (f fields) optStr(name string) *string {
	s, ok := f.str(name, false)
	if !ok {
		return nil
	}
	return &s
}

// strLen checks a string's length in characters (pydantic counts code points).
func (f fields) strLen(name, s string, minLen, maxLen int) bool {
	n := utf8.RuneCountInString(s)
	loc := at(f.loc, name)
	if minLen > 0 && n < minLen {
		unit := "characters"
		if minLen == 1 {
			unit = "character"
		}
		f.is.add("string_too_short", fmt.Sprintf("String should have at least %d %s", minLen, unit),
			loc, jsonInput(s), map[string]any{"min_length": minLen})
		return false
	}
	if maxLen > 0 && n > maxLen {
		f.is.add("string_too_long", fmt.Sprintf("String should have at most %d characters", maxLen),
			loc, jsonInput(s), map[string]any{"max_length": maxLen})
		return false
	}
	return true
}

// integer reads an integer member: a JSON integer, a number with a zero
// fraction, or a numeric string (pydantic's lax mode).
func (f fields) integer(name string) (int64, bool) {
	v, ok := f.raw(name)
	if !ok {
		return 0, false
	}
	return f.intValue(v, at(f.loc, name))
}

func (f fields) intValue(v json.RawMessage, loc []any) (int64, bool) {
	n, typ := parseIntJSON(v)
	switch typ {
	case "":
		return n, true
	case "int_type":
		f.is.add(typ, msgIntType, loc, v, nil)
	case "int_parsing":
		f.is.add(typ, msgIntParsing, loc, v, nil)
	case "int_from_float":
		f.is.add(typ, msgIntFromFloat, loc, v, nil)
	case "int_parsing_size":
		f.is.add(typ, msgIntSize, loc, v, nil)
	}
	return 0, false
}

// parseIntJSON converts a raw JSON value to an integer, or names the
// pydantic error type why not.
func parseIntJSON(v json.RawMessage) (int64, string) {
	switch kindOf(v) {
	case kindNumber:
		return parseIntNumber(string(v), false)
	case kindString:
		s, err := decodeJSONString(v)
		if err != nil {
			return 0, "int_parsing"
		}
		return parseIntNumber(strings.TrimSpace(s), true)
	}
	return 0, "int_type"
}

func parseIntNumber(s string, fromString bool) (int64, string) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, ""
	} else if errors.Is(err, strconv.ErrRange) {
		return 0, "int_parsing_size"
	}
	if fromString {
		return 0, "int_parsing"
	}
	fl, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, "int_parsing"
	}
	if fl != math.Trunc(fl) {
		return 0, "int_from_float"
	}
	if fl > math.MaxInt64 || fl < math.MinInt64 {
		return 0, "int_parsing_size"
	}
	return int64(fl), ""
}

// intRange reads an integer member and checks ge/le bounds (pydantic names).
func (f fields) intRange(name string, ge, le *int64) (int64, bool) {
	n, ok := f.integer(name)
	if !ok {
		return 0, false
	}
	loc := at(f.loc, name)
	if ge != nil && n < *ge {
		f.is.add("greater_than_equal", fmt.Sprintf("Input should be greater than or equal to %d", *ge),
			loc, jsonInput(n), map[string]any{"ge": *ge})
		return 0, false
	}
	if le != nil && n > *le {
		f.is.add("less_than_equal", fmt.Sprintf("Input should be less than or equal to %d", *le),
			loc, jsonInput(n), map[string]any{"le": *le})
		return 0, false
	}
	return n, true
}

func ptr[T any](v T) *T { return &v }

// boolean reads a boolean member: JSON true/false, 0/1, or one of
// pydantic's boolean strings.
func (f fields) boolean(name string) (bool, bool) {
	v, ok := f.raw(name)
	if !ok {
		return false, false
	}
	loc := at(f.loc, name)
	switch kindOf(v) {
	case kindBool:
		return v[0] == 't', true
	case kindNumber:
		switch string(v) {
		case "0":
			return false, true
		case "1":
			return true, true
		}
		f.is.add("bool_parsing", msgBoolParsing, loc, v, nil)
		return false, false
	case kindString:
		s, _ := decodeJSONString(v)
		if b, ok := parseBoolText(s); ok {
			return b, true
		}
		f.is.add("bool_parsing", msgBoolParsing, loc, v, nil)
		return false, false
	}
	f.is.add("bool_type", msgBoolType, loc, v, nil)
	return false, false
}

// parseBoolText accepts pydantic's boolean strings.
func parseBoolText(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "on", "t", "true", "y", "yes":
		return true, true
	case "0", "off", "f", "false", "n", "no":
		return false, true
	}
	return false, false
}

// object reads a member that must be a JSON object (dict_type otherwise);
// it returns the raw object.
func (f fields) object(name string) (json.RawMessage, bool) {
	v, ok := f.raw(name)
	if !ok {
		return nil, false
	}
	if kindOf(v) != kindObject {
		f.is.add("dict_type", msgDictType, at(f.loc, name), v, nil)
		return nil, false
	}
	return v, true
}

// literal reads a string member that must be one of the allowed values.
func (f fields) literal(name string, allowed ...string) (string, bool) {
	s, ok := f.str(name, false)
	if !ok {
		return "", false
	}
	for _, a := range allowed {
		if s == a {
			return s, true
		}
	}
	f.literalError(at(f.loc, name), jsonInput(s), allowed)
	return "", false
}

func (f fields) literalError(loc []any, input json.RawMessage, allowed []string) {
	exp := literalList(allowed)
	f.is.add("literal_error", "Input should be "+exp, loc, input, map[string]any{"expected": exp})
}

// literalList renders allowed values as pydantic does: 'a', 'b' or 'c'.
func literalList(allowed []string) string {
	var b strings.Builder
	for i, a := range allowed {
		switch {
		case i == 0:
		case i == len(allowed)-1:
			b.WriteString(" or ")
		default:
			b.WriteString(", ")
		}
		b.WriteString("'" + a + "'")
	}
	return b.String()
}

// tooLong is pydantic's error for a list or dict over its maximum length.
func (is *issues) tooLong(loc []any, kind string, maxLen, actual int) {
	is.add("too_long", fmt.Sprintf("%s should have at most %d items after validation, not %d", kind, maxLen, actual),
		loc, nil, map[string]any{"field_type": kind, "max_length": maxLen, "actual_length": actual})
}
