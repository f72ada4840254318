package config

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"strings"
	"text/tabwriter"
)

// masked replaces a secret's value when printed.
const masked = "***"

// Setting is one variable as `mail-proxy config` shows it.
type Setting struct {
	Name    string `json:"name"`
	Value   string `json:"value"` // "***" for a set secret
	Default string `json:"default"`
	Doc     string `json:"doc"`
	INIKey  string `json:"ini_key,omitempty"`
	Alias   string `json:"alias,omitempty"`
	Secret  bool   `json:"secret,omitempty"`
}

// Settings lists every variable with its current value in cfg (secrets masked), default and doc.
func Settings(cfg Config) []Setting {
	vars := Variables()
	out := make([]Setting, len(vars))
	for i, v := range vars {
		val := v.Value(cfg)
		if v.Secret && val != "" {
			val = masked
		}
		if v.DSN {
			val = MaskDSN(val)
		}
		out[i] = Setting{Name: v.Name, Value: val, Default: v.Default, Doc: v.Doc, INIKey: v.INIKey, Alias: v.Alias, Secret: v.Secret}
	}
	return out
}

// Print writes every variable as an aligned table: name, current value, default, doc.
// Secrets show as "***" when set; "-" marks an empty value or default.
func Print(w io.Writer, cfg Config) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tVALUE\tDEFAULT\tDESCRIPTION")
	for _, s := range Settings(cfg) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, dash(s.Value), dash(s.Default), s.Doc)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("print config: %w", err)
	}
	return nil
}

// PrintJSON writes Settings(cfg) as a JSON array.
func PrintJSON(w io.Writer, cfg Config) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(Settings(cfg)); err != nil {
		return fmt.Errorf("print config: %w", err)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// keywordPassword is a password in a libpq keyword/value DSN
// ("host=db password=secret" or password='a b').
var keywordPassword = regexp.MustCompile(`(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// userInfoPassword is the password of a URL that url.Parse refuses.
var userInfoPassword = regexp.MustCompile(`(://[^:/@]*:)[^@]*@`)

// MaskDSN hides the password of a database DSN (URL or keyword form), in
// its user info and in a password query parameter; a SQLite path is
// returned unchanged.
func MaskDSN(dsn string) string {
	lower := strings.ToLower(dsn)
	if !strings.HasPrefix(lower, "postgres://") && !strings.HasPrefix(lower, "postgresql://") {
		if strings.Contains(lower, "password") && strings.Contains(dsn, "=") {
			return keywordPassword.ReplaceAllString(dsn, "${1}"+masked)
		}
		return dsn
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return keywordPassword.ReplaceAllString(userInfoPassword.ReplaceAllString(dsn, "${1}"+masked+"@"), "${1}"+masked)
	}
	// A placeholder of URL-safe letters, so that "***" is not escaped.
	const placeholder = "MAILPROXYMASKEDPASSWORD"
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), placeholder)
		}
	}
	q := u.Query()
	for key := range q {
		if strings.EqualFold(key, "password") {
			q.Set(key, placeholder)
			u.RawQuery = q.Encode()
		}
	}
	return strings.ReplaceAll(u.String(), placeholder, masked)
}
