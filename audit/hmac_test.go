package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
)

// TestHMACValueMatchesHMAC checks the pooled HMAC states against a fresh
// HMAC, for values of several lengths, reused states, several keys and
// concurrent use.
func TestHMACValueMatchesHMAC(t *testing.T) {
	keys := [][]byte{[]byte("k1-0123456789abcdef0123456789abcd"), []byte("k2-fedcba9876543210fedcba98765432")}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				key := keys[(w+i)%2]
				v := []byte(fmt.Sprintf("%0*d", i, w))
				m := hmac.New(sha256.New, key)
				m.Write(v)
				want := HMACPrefix + hex.EncodeToString(m.Sum(nil))
				if got := hmacValue(key, v); got != want {
					t.Errorf("hmacValue(%q) = %s, want %s", v, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}
