package config

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// NewLogger builds the service logger from GMP_LOG_LEVEL and GMP_LOG_FORMAT (text or json), writing to w.
func NewLogger(cfg Config, w io.Writer) (*slog.Logger, error) {
	level, err := ParseLogLevel(cfg.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("GMP_LOG_LEVEL: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(cfg.LogFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("GMP_LOG_FORMAT: must be text or json, got %q", cfg.LogFormat)
}
