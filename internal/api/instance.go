package api

import (
	"github.com/mailproxy/mailproxy/internal/store"
)

// Instance defaults (api.md §4.3).
const (
	defaultBouncePort     = 993
	defaultBounceFolder   = "INBOX"
	defaultBouncePoll     = 60
	detailBounceNoHost    = "Bounce enabled but imap_host not configured"
	editionEE             = "ee"
	messageAllFeaturesOn  = "All features are enabled"
	instanceSingletonID   = 1
	instanceMinTokenChars = 1
)

// InstanceInfo is GET /instance's answer; never a password or token.
type InstanceInfo struct {
	ID                 int     `json:"id"`
	Name               string  `json:"name"`
	BounceEnabled      bool    `json:"bounce_enabled"`
	BounceIMAPHost     *string `json:"bounce_imap_host,omitempty"`
	BounceIMAPPort     int     `json:"bounce_imap_port"`
	BounceIMAPUser     *string `json:"bounce_imap_user,omitempty"`
	BounceIMAPFolder   string  `json:"bounce_imap_folder"`
	BounceIMAPSSL      bool    `json:"bounce_imap_ssl"`
	BouncePollInterval int     `json:"bounce_poll_interval"`
	BounceReturnPath   *string `json:"bounce_return_path,omitempty"`
	CreatedAt          string  `json:"created_at,omitempty"`
	UpdatedAt          string  `json:"updated_at,omitempty"`
}

// InstanceUpdate is PUT /instance's body: present fields change.
type InstanceUpdate struct {
	_                  struct{} `additionalProperties:"true"`
	Name               *string  `json:"name,omitempty"`
	BounceEnabled      *bool    `json:"bounce_enabled,omitempty"`
	BounceIMAPHost     *string  `json:"bounce_imap_host,omitempty" nullable:"true"`
	BounceIMAPPort     *int     `json:"bounce_imap_port,omitempty" minimum:"1" maximum:"65535"`
	BounceIMAPUser     *string  `json:"bounce_imap_user,omitempty" nullable:"true"`
	BounceIMAPPassword *string  `json:"bounce_imap_password,omitempty" nullable:"true" doc:"stored encrypted, never returned"`
	BounceIMAPFolder   *string  `json:"bounce_imap_folder,omitempty"`
	BounceIMAPSSL      *bool    `json:"bounce_imap_ssl,omitempty"`
	BouncePollInterval *int     `json:"bounce_poll_interval,omitempty" minimum:"1"`
	BounceReturnPath   *string  `json:"bounce_return_path,omitempty" nullable:"true"`
	APIToken           *string  `json:"api_token,omitempty" minLength:"1" doc:"new admin token; ignored while GMP_API_TOKEN is set"`
}

// UpgradeResponse is POST /instance/upgrade-to-ee's answer.
type UpgradeResponse struct {
	OK      bool   `json:"ok"`
	Edition string `json:"edition"`
	Message string `json:"message"`
}

func (s *server) instanceInfo(inst store.Instance) InstanceInfo {
	info := InstanceInfo{ID: instanceSingletonID, Name: inst.Name, BounceEnabled: inst.BounceEnabled,
		BounceIMAPHost: inst.BounceIMAPHost, BounceIMAPPort: inst.BounceIMAPPort, BounceIMAPUser: inst.BounceIMAPUser,
		BounceIMAPFolder: inst.BounceIMAPFolder, BounceIMAPSSL: inst.BounceIMAPSSL,
		BouncePollInterval: inst.BouncePollInterval, BounceReturnPath: inst.BounceReturnPath,
		CreatedAt: rfc3339(inst.CreatedAt), UpdatedAt: rfc3339(inst.UpdatedAt)}
	if info.Name == "" {
		info.Name = s.opts.InstanceName
	}
	if info.BounceIMAPPort == 0 {
		info.BounceIMAPPort = defaultBouncePort
	}
	if info.BounceIMAPFolder == "" {
		info.BounceIMAPFolder = defaultBounceFolder
	}
	if info.BouncePollInterval == 0 {
		info.BouncePollInterval = defaultBouncePoll
	}
	return info
}

func (s *server) getInstance(c *call) (any, error) {
	inst, err := s.st.GetInstance(c.ctx())
	if err != nil {
		return nil, err
	}
	return s.instanceInfo(inst), nil
}

func (s *server) updateInstance(c *call) (any, error) {
	top, aerr := parseJSONBody(c.body, true)
	if aerr != nil {
		return nil, aerr
	}
	inst, err := s.st.GetInstance(c.ctx())
	if err != nil {
		return nil, err
	}
	var is issues
	f := newFields(top, []any{"body"}, &is)
	if v, ok := f.str("name", false); ok {
		inst.Name = v
	}
	if v, ok := f.boolean("bounce_enabled"); ok {
		inst.BounceEnabled = v
	}
	if f.has("bounce_imap_host") {
		inst.BounceIMAPHost = f.optStr("bounce_imap_host")
	}
	if v, ok := f.intRange("bounce_imap_port", &one, ptr(int64(65535))); ok {
		inst.BounceIMAPPort = int(v)
	}
	if f.has("bounce_imap_user") {
		inst.BounceIMAPUser = f.optStr("bounce_imap_user")
	}
	if f.has("bounce_imap_password") {
		inst.BounceIMAPPassword, _ = f.str("bounce_imap_password", false)
	}
	if v, ok := f.str("bounce_imap_folder", false); ok {
		inst.BounceIMAPFolder = v
	}
	if v, ok := f.boolean("bounce_imap_ssl"); ok {
		inst.BounceIMAPSSL = v
	}
	if v, ok := f.intRange("bounce_poll_interval", &one, nil); ok {
		inst.BouncePollInterval = int(v)
	}
	if f.has("bounce_return_path") {
		inst.BounceReturnPath = f.optStr("bounce_return_path")
	}
	newToken := ""
	if v, ok := f.str("api_token", false); ok && f.strLen("api_token", v, instanceMinTokenChars, 0) {
		newToken = v
	}
	if !is.empty() {
		return nil, invalid(is.list)
	}
	// GMP_API_TOKEN wins: a token sent while it is set is ignored.
	if newToken != "" && !s.opts.AdminTokenFixed {
		inst.APIToken = newToken
	} else {
		newToken = ""
	}
	if err := s.st.PutInstance(c.ctx(), inst); err != nil {
		return nil, err
	}
	if newToken != "" {
		if err := s.auth.SetAdminToken(newToken); err != nil {
			return nil, err
		}
	}
	return okResponse, nil
}

func (s *server) reloadBounce(c *call) (any, error) {
	inst, err := s.st.GetInstance(c.ctx())
	if err != nil {
		return nil, err
	}
	enabled, host := inst.BounceEnabled, deref(inst.BounceIMAPHost)
	if s.opts.BounceEnabled { // GMP_BOUNCE_* override the stored settings
		enabled, host = true, s.opts.BounceIMAPHost
	}
	if enabled && host == "" {
		return nil, badRequest(detailBounceNoHost)
	}
	if s.d.ReloadBounce != nil {
		s.d.ReloadBounce()
	}
	return okResponse, nil
}

func (s *server) upgradeToEE(c *call) (any, error) {
	inst, err := s.st.GetInstance(c.ctx())
	if err != nil {
		return nil, err
	}
	if inst.Edition != editionEE {
		inst.Edition = editionEE
		if err := s.st.PutInstance(c.ctx(), inst); err != nil {
			return nil, err
		}
	}
	return UpgradeResponse{OK: true, Edition: editionEE, Message: messageAllFeaturesOn}, nil
}
