package config

import (
	"encoding/json"
	"fmt"
	"io"
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
