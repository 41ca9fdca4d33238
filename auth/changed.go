package auth

// PoliciesChanged drops the parsed policies that another node may have
// changed (nil: all of them), so the next request reads them again.
// Tokens need nothing: every request reads its token's entry from the
// store, so a revocation on any node is refused at once everywhere.
func (m *Manager) PoliciesChanged(names []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	if names == nil {
		clear(m.policies)
		return
	}
	for _, n := range names {
		delete(m.policies, n)
	}
}
