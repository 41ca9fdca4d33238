package api

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/keyhold/keyhold/fault"
	"github.com/keyhold/keyhold/hsm"
	"github.com/keyhold/keyhold/store"
)

// The one place where errors become HTTP statuses and Vault error bodies.
// Internal errors are logged with their detail and answered with none.

func statusOf(err error) (int, string) {
	var me *methodError
	if errors.As(err, &me) {
		return http.StatusMethodNotAllowed, me.Error()
	}
	if e, ok := fault.As(err); ok {
		switch e.Kind {
		case fault.BadInput, fault.Unsupported:
			return http.StatusBadRequest, e.Msg
		case fault.NotFound:
			return http.StatusNotFound, e.Msg
		case fault.Conflict:
			return http.StatusConflict, e.Msg
		case fault.Permission, fault.Unauthorized:
			return http.StatusForbidden, e.Msg
		case fault.TooLarge:
			return http.StatusRequestEntityTooLarge, e.Msg
		case fault.Unavailable:
			return http.StatusServiceUnavailable, e.Msg
		}
		return http.StatusInternalServerError, "internal error"
	}
	var he *hsm.Error
	if errors.As(err, &he) {
		switch he.Kind {
		case hsm.KindBadInput, hsm.KindUnsupported:
			return http.StatusBadRequest, he.Msg
		case hsm.KindUnavailable:
			return http.StatusServiceUnavailable, "the HSM is unavailable"
		}
		return http.StatusInternalServerError, "internal error"
	}
	if errors.Is(err, store.ErrNotFound) {
		return http.StatusNotFound, "not found"
	}
	return http.StatusInternalServerError, "internal error"
}

func (s *Server) writeError(w http.ResponseWriter, reqID string, err error) {
	status, msg := statusOf(err)
	if status >= 500 {
		s.d.Logger.Error("request failed", "request_id", reqID, "status", status, "error", err)
	} else {
		s.d.Logger.Debug("request refused", "request_id", reqID, "status", status, "error", msg)
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string][]string{"errors": {msg}})
}

func (s *Server) writeResponse(w http.ResponseWriter, r *http.Request, reqID string, resp *Response) {
	if resp == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if resp.Stream != nil {
		resp.Stream.ServeHTTP(w, r)
		return
	}
	status := resp.Status
	if status == 0 {
		status = http.StatusOK
	}
	var body any = resp.Raw
	if body == nil {
		env := map[string]any{
			"request_id":     reqID,
			"lease_id":       "",
			"renewable":      false,
			"lease_duration": 0,
			"data":           resp.Data,
			"wrap_info":      nil,
			"warnings":       resp.Warnings,
			"auth":           resp.Auth,
		}
		body = env
	}
	b, err := json.Marshal(body)
	if err != nil {
		s.writeError(w, reqID, err)
		return
	}
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
