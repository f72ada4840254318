package proxy

import (
	"log/slog"
	"time"

	"github.com/mailproxy/mailproxy/internal/api"
	"github.com/mailproxy/mailproxy/internal/attach"
	"github.com/mailproxy/mailproxy/internal/config"
	"github.com/mailproxy/mailproxy/internal/delivery"
	"github.com/mailproxy/mailproxy/internal/metrics"
	"github.com/mailproxy/mailproxy/internal/netguard"
	"github.com/mailproxy/mailproxy/internal/queue"
	"github.com/mailproxy/mailproxy/internal/report"
	"github.com/mailproxy/mailproxy/internal/smtppool"
)

// How the configuration maps onto each part's own options: the parts never
// see config.Config. Hooks between parts are added by Run.

func senderOptions(cfg config.Config, pool *smtppool.Pool, log *slog.Logger) delivery.SenderOptions {
	o := delivery.SenderOptions{Pool: pool, ResetAfterSuccess: cfg.SMTPResetAfterMessage, Logger: log}
	if cfg.AccountTargetsPublicOnly {
		o.TenantTargetPolicy = &netguard.Policy{Level: netguard.Public}
	}
	return o
}

func attachOptions(cfg config.Config, m *metrics.Metrics, log *slog.Logger, userAgent string) attach.Options {
	return attach.Options{
		Timeout:               cfg.AttachmentTimeout.Duration(),
		MaxConcurrent:         cfg.MaxAttachmentFetches,
		MaxAttachmentBytes:    int64(cfg.AttachmentMaxMB * 1024 * 1024),
		MaxMessageBytes:       int64(cfg.MessageMaxMB * 1024 * 1024),
		BaseDir:               cfg.AttachmentBaseDir,
		AllowPrivate:          cfg.AttachmentAllowPrivate,
		ClientURLAllowPrivate: cfg.ClientURLAllowPrivate,
		MemoryMaxBytes:        int64(cfg.CacheMemoryMaxMB * 1024 * 1024),
		MemoryTTL:             cfg.CacheMemoryTTL.Duration(),
		DiskDir:               cfg.CacheDiskDir,
		DiskMaxBytes:          int64(cfg.CacheDiskMaxMB * 1024 * 1024),
		DiskTTL:               cfg.CacheDiskTTL.Duration(),
		DiskThresholdBytes:    int64(cfg.CacheDiskThresholdKB) * 1024,
		Logger:                log,
		Metrics:               m,
		UserAgent:             userAgent,
	}
}

func reportOptions(cfg config.Config, owner string, m *metrics.Metrics, log *slog.Logger, userAgent string) report.Options {
	return report.Options{
		Owner:                 owner,
		BatchSize:             cfg.ReportBatchSize,
		Timeout:               cfg.ClientSyncTimeout.Duration(),
		SyncInterval:          cfg.SyncInterval.Duration(),
		GlobalURL:             cfg.ClientSyncURL,
		GlobalUser:            cfg.ClientSyncUser,
		GlobalPassword:        cfg.ClientSyncPassword,
		GlobalToken:           cfg.ClientSyncToken,
		GlobalSecret:          cfg.ClientSyncSecret,
		Concurrency:           8,
		ClientURLAllowPrivate: cfg.ClientURLAllowPrivate,
		UserAgent:             userAgent,
		Logger:                log,
		Metrics:               m,
	}
}

// queueOptions: onDemand is test mode as Run decided it; bounceReturnPath
// the envelope sender when bounce processing is on.
func queueOptions(cfg config.Config, owner string, onDemand bool, bounceReturnPath string, m *metrics.Metrics, log *slog.Logger) queue.Options {
	delays := make([]time.Duration, len(cfg.RetryDelays))
	for i, s := range cfg.RetryDelays {
		delays[i] = time.Duration(s) * time.Second
	}
	return queue.Options{
		Owner:               owner,
		MaxSends:            cfg.MaxSends,
		MaxSendsPerAccount:  cfg.MaxSendsPerAccount,
		BatchSizePerAccount: cfg.BatchSizePerAccount,
		Retry:               queue.RetryPolicy{MaxRetries: cfg.MaxRetries, Delays: delays},
		Lease:               time.Duration(cfg.ClaimLeaseSeconds) * time.Second,
		PollInterval:        cfg.SendLoopInterval.Duration(),
		ShutdownTimeout:     cfg.ShutdownTimeout.Duration(),
		TestMode:            onDemand,
		LogActivity:         cfg.LogDeliveryActivity,
		BounceReturnPath:    bounceReturnPath,
		MIME:                delivery.BuildOptions{NoGeneratedText: !cfg.HTMLTextAlternative},
		Logger:              log,
		Metrics:             m,
	}
}

// apiOptions: active and onDemand are the schedule as Run decided it.
func apiOptions(cfg config.Config, active, onDemand bool) api.Options {
	return api.Options{
		InstanceName:             cfg.InstanceName,
		MaxRequestBytes:          int64(cfg.MaxRequestMB * (1 << 20)),
		MaxEnqueueBatch:          cfg.MaxEnqueueBatch,
		DefaultPriority:          cfg.DefaultPriority,
		ReportRetention:          cfg.ReportRetention.Duration(),
		SyncInterval:             cfg.SyncInterval.Duration(),
		SchedulerActive:          active,
		TestMode:                 onDemand,
		ReportLoopRuns:           active && !onDemand,
		AdminTokenFixed:          cfg.APIToken != "",
		BounceEnabled:            cfg.BounceEnabled,
		BounceIMAPHost:           cfg.BounceIMAPHost,
		AccountTargetsPublicOnly: cfg.AccountTargetsPublicOnly,
	}
}
