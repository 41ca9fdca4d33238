package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// keyhold status: GET sys/health, the appliance and its HSM.

func cmdStatus(e *env, args []string) int {
	c := e.newCommand("status", "[options]",
		`Prints the appliance's and the HSM's health (sys/health, no token needed).
Exits 0 if healthy, 2 if the appliance answered but is not healthy, 1 if it
could not be reached.`, false)
	cl, code := c.start(args, 0, 0)
	if cl == nil {
		return code
	}
	r, err := cl.do(e.ctx, http.MethodGet, "sys/health", nil, nil)
	var ae *apiError
	if err != nil && !errors.As(err, &ae) {
		return c.fail("checking status", err)
	}
	var h health
	if json.Unmarshal(r.body, &h) != nil || h.Version == "" {
		// Not a health report: something else answers at that address.
		if err == nil {
			err = errors.New("the answer is not a Keyhold health report")
		}
		// Exit 1, as for an address that cannot be reached: 2 would say
		// that the appliance is there but unhealthy.
		fmt.Fprintf(e.stderr, "Error checking status: %v\n", err)
		return exitError
	}
	healthy := r.status == http.StatusOK
	p := c.printer()
	if p.format == "json" {
		p.json(r.body)
	} else {
		p.table([]string{"Key", "Value"}, h.rows())
	}
	if !healthy {
		return exitUnhealthy
	}
	return exitOK
}

// health is Vault's sys/health plus the HSM.
type health struct {
	Initialized bool     `json:"initialized"`
	Sealed      bool     `json:"sealed"`
	Standby     bool     `json:"standby"`
	Version     string   `json:"version"`
	Problems    []string `json:"problems"`
	HSM         struct {
		TokenLabel     string `json:"token_label"`
		Manufacturer   string `json:"manufacturer"`
		Model          string `json:"model"`
		SerialNumber   string `json:"serial_number"`
		Library        string `json:"library"`
		LibraryVersion string `json:"library_version"`
		KEKVersion     int    `json:"kek_version"`
		Capabilities   struct {
			Mechanisms    []string `json:"mechanisms"`
			OAEPHashes    []string `json:"oaep_hashes"`
			RSAAESKeyWrap bool     `json:"rsa_aes_key_wrap"`
		} `json:"capabilities"`
	} `json:"hsm"`
}

func (h *health) rows() [][]string {
	problems := "none"
	if len(h.Problems) > 0 {
		problems = strings.Join(h.Problems, ", ")
	}
	hsm := h.HSM
	lib := strings.TrimSpace(hsm.Library + " " + hsm.LibraryVersion)
	return [][]string{
		{"Initialized", fmt.Sprint(h.Initialized)},
		{"Sealed", fmt.Sprint(h.Sealed)},
		{"Version", h.Version},
		{"HSM Token Label", hsm.TokenLabel},
		{"HSM Manufacturer", hsm.Manufacturer},
		{"HSM Model", hsm.Model},
		{"HSM Serial Number", hsm.SerialNumber},
		{"HSM Library", lib},
		{"KEK Version", fmt.Sprint(hsm.KEKVersion)},
		{"RSA-OAEP Hashes", strings.Join(hsm.Capabilities.OAEPHashes, ", ")},
		{"RSA AES Key Wrap", fmt.Sprint(hsm.Capabilities.RSAAESKeyWrap)},
		{"Mechanisms", fmt.Sprint(len(hsm.Capabilities.Mechanisms))},
		{"Problems", problems},
	}
}
