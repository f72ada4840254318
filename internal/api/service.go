package api

import (
	"net/http"

	"github.com/mailproxy/mailproxy/internal/auth"
	"github.com/mailproxy/mailproxy/internal/store"
)

// HealthResponse is GET /health's answer.
type HealthResponse struct {
	Status string `json:"status" example:"ok"`
}

// ReadyResponse is GET /ready's answer (503 when not ready).
type ReadyResponse struct {
	Status string `json:"status" enum:"ready,unavailable"`
	Detail string `json:"detail,omitempty" doc:"why the instance is not ready"`
}

// StatusResponse is GET /status's answer.
type StatusResponse struct {
	OK     bool `json:"ok"`
	Active bool `json:"active" doc:"this instance runs the dispatcher and the report loop"`
}

// OKResponse is the plain success answer.
type OKResponse struct {
	OK bool `json:"ok"`
}

var okResponse = OKResponse{OK: true}

// StatsResponse is GET /stats's answer.
type StatsResponse struct {
	OK      bool                `json:"ok"`
	Tenants []store.TenantStats `json:"tenants" nullable:"false"`
}

func (s *server) health(*call) (any, error) { return HealthResponse{Status: "ok"}, nil }

func (s *server) ready(c *call) (any, error) {
	notReady := func(detail string) (any, error) {
		return &reply{status: http.StatusServiceUnavailable,
			body: ReadyResponse{Status: "unavailable", Detail: detail}}, nil
	}
	if s.d.Ready != nil {
		if err := s.d.Ready(c.ctx()); err != nil {
			if f := store.FaultOf(err); f != store.FaultNone {
				s.storeHealth.failed(f, err)
				return notReady(f.String())
			}
			s.log.Warn("not ready", "error", err)
			return notReady(err.Error())
		}
		s.storeHealth.reachable()
	}
	// The store answers reads; are writes failing?
	if f := s.storeHealth.current(); f != store.FaultNone {
		return notReady(f.String() + ": writes are failing")
	}
	return ReadyResponse{Status: "ready"}, nil
}

func (s *server) status(*call) (any, error) {
	return StatusResponse{OK: true, Active: s.opts.SchedulerActive}, nil
}

func (s *server) stats(c *call) (any, error) {
	tenant, _ := c.qString("tenant_id")
	if !c.p.Admin {
		if tenant != "" {
			if err := c.p.CheckTenant(tenant); err != nil {
				return nil, err
			}
		}
		tenant = c.p.TenantID
	}
	c.tenantID = tenant
	st, err := s.st.Stats(c.ctx(), tenant, s.now())
	if err != nil {
		return nil, err
	}
	if st == nil {
		st = []store.TenantStats{}
	}
	return StatsResponse{OK: true, Tenants: st}, nil
}

func (s *server) runNow(c *call) (any, error) {
	tenant, _ := c.qString("tenant_id")
	return okResponse, s.runNowFor(c.p, tenant)
}

// runNowFor starts a dispatch and report cycle: of one tenant ("" = all)
// for the admin token, of its own tenant for a key (naming another is 401).
func (s *server) runNowFor(p auth.Principal, tenant string) error {
	if !p.Admin {
		if tenant != "" {
			if err := p.CheckTenant(tenant); err != nil {
				return err
			}
		}
		tenant = p.TenantID
	}
	if s.d.RunNow != nil {
		s.d.RunNow(tenant)
	}
	return nil
}
