package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/keyhold/keyhold/store"
)

func (s suite) kmip(t *testing.T) {
	t.Run("create and get", s.kmipCreateGet)
	t.Run("update", s.kmipUpdate)
	t.Run("locate", s.kmipLocate)
	t.Run("due count delete", s.kmipDueCountDelete)
}

// kmipObject returns an object whose every field depends on its arguments.
func kmipObject(mount, scope, id string) *store.KMIPObject {
	return &store.KMIPObject{
		Mount:     mount,
		Scope:     scope,
		ID:        id,
		Type:      "SymmetricKey",
		Value:     fmt.Appendf(nil, "blob\x00\xff %s", id),
		CreatedAt: base(),
		UpdatedAt: base().Add(time.Minute),
		Attributes: []store.KMIPAttribute{
			{Name: "Unique Identifier", Value: []byte("uid " + id), Text: id, HasText: true},
			{Name: "Name", Index: 0, Value: []byte("name a " + id), Text: "a-" + id, HasText: true},
			{Name: "Name", Index: 1, Value: []byte("name b " + id), Text: "b-" + id, HasText: true},
			{Name: "Cryptographic Usage Mask", Value: []byte{0, 0, 0, 0x0c}, Number: 0x0c, HasNumber: true},
			{Name: "Initial Date", Value: []byte("date"), Number: 1000, HasNumber: true},
			{Name: "Digest", Value: []byte{}, Number: 0, HasNumber: true, Text: "", HasText: true},
		},
	}
}

func createKMIP(t *testing.T, st store.Store, objs ...*store.KMIPObject) {
	t.Helper()
	update(t, st, func(ctx context.Context, tx store.Tx) error {
		for _, o := range objs {
			if err := tx.CreateKMIPObject(ctx, o); err != nil {
				return err
			}
		}
		return nil
	})
}

func getKMIP(t *testing.T, st store.Store, mount, scope, id string) (*store.KMIPObject, error) {
	t.Helper()
	var o *store.KMIPObject
	var gerr error
	view(t, st, func(ctx context.Context, tx store.Tx) error {
		o, gerr = tx.GetKMIPObject(ctx, mount, scope, id)
		return nil
	})
	return o, gerr
}

// sameKMIP fails t unless got equals want, times within a millisecond.
func sameKMIP(t *testing.T, got, want *store.KMIPObject) {
	t.Helper()
	if got == nil {
		t.Fatalf("kmip object: got nil, want %s", want.ID)
	}
	sameTime(t, "created at", got.CreatedAt, want.CreatedAt)
	sameTime(t, "updated at", got.UpdatedAt, want.UpdatedAt)
	if want.DueAt.IsZero() != got.DueAt.IsZero() {
		t.Errorf("due at: got %v, want %v", got.DueAt, want.DueAt)
	} else if !want.DueAt.IsZero() {
		sameTime(t, "due at", got.DueAt, want.DueAt)
	}
	if got.Mount != want.Mount || got.Scope != want.Scope || got.ID != want.ID || got.Type != want.Type || !bytes.Equal(got.Value, want.Value) {
		t.Errorf("kmip object:\n got %s/%s/%s %s %q\nwant %s/%s/%s %s %q", got.Mount, got.Scope, got.ID, got.Type, got.Value,
			want.Mount, want.Scope, want.ID, want.Type, want.Value)
	}
	if len(got.Attributes) != len(want.Attributes) {
		t.Fatalf("attributes: got %d, want %d", len(got.Attributes), len(want.Attributes))
	}
	for i := range want.Attributes {
		g, w := got.Attributes[i], want.Attributes[i]
		if g.Name != w.Name || g.Index != w.Index || !bytes.Equal(g.Value, w.Value) || g.Text != w.Text ||
			g.HasText != w.HasText || g.Number != w.Number || g.HasNumber != w.HasNumber {
			t.Errorf("attribute %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

func (s suite) kmipCreateGet(t *testing.T) {
	st := s.open(t)
	o1 := kmipObject("m1", "s1", "id-1")
	o2 := kmipObject("m1", "s2", "id-2")
	o2.DueAt = base().Add(time.Hour)
	o2.Attributes = nil
	createKMIP(t, st, o1, o2)

	tests := []struct {
		name             string
		mount, scope, id string
		want             *store.KMIPObject
		wantErr          error
	}{
		{name: "ok get", mount: "m1", scope: "s1", id: "id-1", want: o1},
		{name: "ok no attributes and a due time", mount: "m1", scope: "s2", id: "id-2", want: o2},
		{name: "fail other scope", mount: "m1", scope: "s2", id: "id-1", wantErr: store.ErrNotFound},
		{name: "fail other mount", mount: "m2", scope: "s1", id: "id-1", wantErr: store.ErrNotFound},
		{name: "fail missing", mount: "m1", scope: "s1", id: "id-9", wantErr: store.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := getKMIP(t, st, tt.mount, tt.scope, tt.id)
			checkErr(t, "get kmip object", err, tt.wantErr)
			if tt.want != nil {
				sameKMIP(t, got, tt.want)
			}
		})
	}
	t.Run("fail duplicate id in another mount", func(t *testing.T) {
		ctx := t.Context()
		err := st.Update(ctx, func(tx store.Tx) error { return tx.CreateKMIPObject(ctx, kmipObject("m2", "s1", "id-1")) })
		checkErr(t, "create duplicate", err, store.ErrExists)
	})
	t.Run("fail create in a view", func(t *testing.T) {
		ctx := t.Context()
		err := st.View(ctx, func(tx store.Tx) error { return tx.CreateKMIPObject(ctx, kmipObject("m1", "s1", "id-3")) })
		if err == nil {
			t.Fatal("create in a view succeeded")
		}
		_, gerr := getKMIP(t, st, "m1", "s1", "id-3")
		checkErr(t, "get after refused create", gerr, store.ErrNotFound)
	})
	t.Run("ok a failed create leaves nothing", func(t *testing.T) {
		ctx := t.Context()
		errBoom := errors.New("boom")
		err := st.Update(ctx, func(tx store.Tx) error {
			if err := tx.CreateKMIPObject(ctx, kmipObject("m1", "s1", "id-4")); err != nil {
				return err
			}
			return errBoom
		})
		checkErr(t, "rolled back create", err, errBoom)
		_, gerr := getKMIP(t, st, "m1", "s1", "id-4")
		checkErr(t, "get after rollback", gerr, store.ErrNotFound)
	})
}

func (s suite) kmipUpdate(t *testing.T) {
	st := s.open(t)
	orig := kmipObject("m1", "s1", "id-1")
	other := kmipObject("m1", "s1", "id-2")
	createKMIP(t, st, orig, other)

	changed := kmipObject("m1", "s1", "id-1")
	changed.Type = "SecretData"                // ignored: the type never changes
	changed.CreatedAt = base().Add(-time.Hour) // ignored
	changed.Value = nil
	changed.DueAt = base().Add(2 * time.Hour)
	changed.UpdatedAt = base().Add(3 * time.Hour)
	changed.Attributes = []store.KMIPAttribute{
		{Name: "State", Value: []byte{5}, Number: 5, HasNumber: true},
		{Name: "Name", Value: []byte("n"), Text: "renamed", HasText: true},
	}
	update(t, st, func(ctx context.Context, tx store.Tx) error { return tx.UpdateKMIPObject(ctx, changed) })

	want := *changed
	want.Type, want.CreatedAt, want.Value = orig.Type, orig.CreatedAt, []byte{}
	got, err := getKMIP(t, st, "m1", "s1", "id-1")
	checkErr(t, "get updated", err, nil)
	sameKMIP(t, got, &want)
	got, err = getKMIP(t, st, "m1", "s1", "id-2")
	checkErr(t, "get other", err, nil)
	sameKMIP(t, got, other)

	t.Run("ok clearing the due time", func(t *testing.T) {
		c := want
		c.DueAt = time.Time{}
		update(t, st, func(ctx context.Context, tx store.Tx) error { return tx.UpdateKMIPObject(ctx, &c) })
		got, err := getKMIP(t, st, "m1", "s1", "id-1")
		checkErr(t, "get", err, nil)
		sameKMIP(t, got, &c)
	})
	for _, tt := range []struct{ name, mount, scope, id string }{
		{"fail missing", "m1", "s1", "id-9"},
		{"fail other scope", "m1", "s2", "id-1"},
		{"fail other mount", "m2", "s1", "id-1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			err := st.Update(ctx, func(tx store.Tx) error {
				return tx.UpdateKMIPObject(ctx, kmipObject(tt.mount, tt.scope, tt.id))
			})
			checkErr(t, "update", err, store.ErrNotFound)
		})
	}
}

func (s suite) kmipLocate(t *testing.T) {
	st := s.open(t)
	attr := func(name string, value string, text string, num int64) store.KMIPAttribute {
		a := store.KMIPAttribute{Name: name, Value: []byte(value)}
		if text != "" {
			a.Text, a.HasText = text, true
		}
		if num != 0 {
			a.Number, a.HasNumber = num, true
		}
		return a
	}
	mk := func(scope, id string, attrs ...store.KMIPAttribute) *store.KMIPObject {
		o := kmipObject("m1", scope, id)
		o.Attributes = attrs
		return o
	}
	// Created in this order: "newest first" is k5, k4, k3, k2, k1.
	createKMIP(t, st,
		mk("s1", "k1", attr("Name", "n-alpha", "alpha", 0), attr("Mask", "m12", "", 12), attr("Date", "d100", "", 100)),
		mk("s1", "k2", attr("Name", "n-beta", "beta", 0), attr("Name", "n-alpha", "alpha", 0), attr("Mask", "m4", "", 4), attr("Date", "d200", "", 200)),
		mk("s1", "k3", attr("Name", "n-gamma", "gamma", 0), attr("Mask", "m15", "", 15), attr("Date", "d300", "", 300)),
		mk("s2", "k4", attr("Name", "n-alpha", "alpha", 0), attr("Mask", "m15", "", 15)),
		mk("s1", "k5", attr("Type", "sym", "", 0), attr("Kind", "t2", "", 2)),
		mk("s3", "k6", attr("Name", "n-dup", "dup", 0), attr("Name", "n-dup", "dup", 0), attr("Mask", "m4", "", 4)),
	)
	// An object with more attributes than one insert statement carries.
	var many []store.KMIPAttribute
	for i := range 70 {
		many = append(many, attr("Name", fmt.Sprintf("n-many-%d", i), fmt.Sprintf("many-%d", i), 0))
	}
	many = append(many, attr("Mask", "m8", "", 8))
	createKMIP(t, st, mk("s4", "k7", many...))
	manyText := func(text string) store.KMIPQuery {
		return store.KMIPQuery{Scope: "s4", Filters: []store.KMIPFilter{{Name: "Name", Match: store.KMIPMatchText, Text: text}}}
	}
	tests := []struct {
		name      string
		q         store.KMIPQuery
		want      []string
		wantTotal int
	}{
		{name: "ok no filter is every object of the scope, newest first", q: store.KMIPQuery{}, want: []string{"k5", "k3", "k2", "k1"}, wantTotal: 4},
		{name: "ok text of any instance", q: store.KMIPQuery{Filters: []store.KMIPFilter{{Name: "Name", Match: store.KMIPMatchText, Text: "alpha"}}}, want: []string{"k2", "k1"}, wantTotal: 2},
		{name: "ok value", q: store.KMIPQuery{Filters: []store.KMIPFilter{{Name: "Name", Match: store.KMIPMatchValue, Value: []byte("n-beta")}}}, want: []string{"k2"}, wantTotal: 1},
		{name: "ok value is case sensitive", q: store.KMIPQuery{Filters: []store.KMIPFilter{{Name: "Name", Match: store.KMIPMatchValue, Value: []byte("N-BETA")}}}, want: []string{}, wantTotal: 0},
		{name: "ok value of an attribute without a number", q: store.KMIPQuery{Filters: []store.KMIPFilter{{Name: "Type", Match: store.KMIPMatchValue, Value: []byte("sym")}}}, want: []string{"k5"}, wantTotal: 1},
		{name: "ok value filters skip attributes with a number", q: store.KMIPQuery{Filters: []store.KMIPFilter{{Name: "Kind", Match: store.KMIPMatchValue, Value: []byte("t2")}}}, want: []string{}, wantTotal: 0},
		{name: "ok value filters skip attributes with a number when not driving", q: store.KMIPQuery{Filters: []store.KMIPFilter{
			{Name: "Type", Match: store.KMIPMatchValue, Value: []byte("sym")},
			{Name: "Kind", Match: store.KMIPMatchValue, Value: []byte("t2")},
		}}, want: []string{}, wantTotal: 0},
		{name: "ok range of that attribute", q: store.KMIPQuery{Filters: []store.KMIPFilter{{Name: "Kind", Match: store.KMIPMatchRange, Min: 2, Max: 2}}}, want: []string{"k5"}, wantTotal: 1},
		{name: "ok filter on the name of the attribute", q: store.KMIPQuery{Filters: []store.KMIPFilter{{Name: "Other", Match: store.KMIPMatchText, Text: "alpha"}}}, want: []string{}, wantTotal: 0},
		{name: "ok range inclusive", q: store.KMIPQuery{Filters: []store.KMIPFilter{{Name: "Date", Match: store.KMIPMatchRange, Min: 100, Max: 200}}}, want: []string{"k2", "k1"}, wantTotal: 2},
		{name: "ok mask containment", q: store.KMIPQuery{Filters: []store.KMIPFilter{{Name: "Mask", Match: store.KMIPMatchMask, Mask: 12}}}, want: []string{"k3", "k1"}, wantTotal: 2},
		{name: "ok filters are ANDed", q: store.KMIPQuery{Filters: []store.KMIPFilter{
			{Name: "Name", Match: store.KMIPMatchText, Text: "alpha"},
			{Name: "Mask", Match: store.KMIPMatchMask, Mask: 8},
		}}, want: []string{"k1"}, wantTotal: 1},
		{name: "ok offset and limit", q: store.KMIPQuery{Offset: 1, Limit: 2}, want: []string{"k3", "k2"}, wantTotal: 4},
		{name: "ok offset past the end", q: store.KMIPQuery{Offset: 9}, want: []string{}, wantTotal: 4},
		{name: "ok other scope", q: store.KMIPQuery{Scope: "s2"}, want: []string{"k4"}, wantTotal: 1},
		{name: "ok other mount", q: store.KMIPQuery{Mount: "m2"}, want: []string{}, wantTotal: 0},
		{name: "ok two matching instances count once", q: store.KMIPQuery{Scope: "s3", Filters: []store.KMIPFilter{
			{Name: "Name", Match: store.KMIPMatchText, Text: "dup"},
			{Name: "Mask", Match: store.KMIPMatchMask, Mask: 4},
		}}, want: []string{"k6"}, wantTotal: 1},
		{name: "ok many attributes: the first", q: manyText("many-0"), want: []string{"k7"}, wantTotal: 1},
		{name: "ok many attributes: after the first statement", q: manyText("many-32"), want: []string{"k7"}, wantTotal: 1},
		{name: "ok many attributes: the last name", q: manyText("many-69"), want: []string{"k7"}, wantTotal: 1},
		{name: "ok many attributes: one past them", q: manyText("many-70"), want: []string{}, wantTotal: 0},
		{name: "ok many attributes: the last of all", q: store.KMIPQuery{Scope: "s4", Filters: []store.KMIPFilter{
			{Name: "Name", Match: store.KMIPMatchText, Text: "many-50"},
			{Name: "Mask", Match: store.KMIPMatchMask, Mask: 8},
		}}, want: []string{"k7"}, wantTotal: 1},
		{name: "ok a value filter with a range filter", q: store.KMIPQuery{Filters: []store.KMIPFilter{
			{Name: "Date", Match: store.KMIPMatchRange, Min: 150, Max: 400},
			{Name: "Name", Match: store.KMIPMatchValue, Value: []byte("n-alpha")},
		}}, want: []string{"k2"}, wantTotal: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := tt.q
			if q.Mount == "" {
				q.Mount = "m1"
			}
			if q.Scope == "" {
				q.Scope = "s1"
			}
			var got []string
			var total int
			view(t, st, func(ctx context.Context, tx store.Tx) (err error) {
				got, total, err = tx.LocateKMIPObjects(ctx, &q)
				return err
			})
			if !slices.Equal(got, tt.want) || total != tt.wantTotal {
				t.Fatalf("locate: got %q (total %d), want %q (total %d)", got, total, tt.want, tt.wantTotal)
			}
		})
	}
	t.Run("fail unknown match", func(t *testing.T) {
		ctx := t.Context()
		err := st.View(ctx, func(tx store.Tx) error {
			_, _, err := tx.LocateKMIPObjects(ctx, &store.KMIPQuery{Mount: "m1", Scope: "s1",
				Filters: []store.KMIPFilter{{Name: "Name", Match: "like", Text: "%"}}})
			return err
		})
		if err == nil {
			t.Fatal("an unknown match was accepted")
		}
	})
}

func (s suite) kmipDueCountDelete(t *testing.T) {
	st := s.open(t)
	due := func(scope, id string, at time.Time) *store.KMIPObject {
		o := kmipObject("m1", scope, id)
		o.DueAt = at
		return o
	}
	now := base()
	createKMIP(t, st,
		due("s1", "past", now.Add(-time.Hour)),
		due("s1", "exactly", now),
		due("s1", "future", now.Add(time.Second)),
		due("s1", "never", time.Time{}),
		due("s2", "other-scope", now.Add(-time.Hour)),
		kmipObject("m2", "s1", "other-mount"),
	)
	var ids []string
	view(t, st, func(ctx context.Context, tx store.Tx) (err error) {
		ids, err = tx.DueKMIPObjects(ctx, "m1", "s1", now)
		return err
	})
	if !slices.Equal(ids, []string{"past", "exactly"}) {
		t.Fatalf("due: got %q", ids)
	}
	count := func(mount, scope string) int {
		var n int
		view(t, st, func(ctx context.Context, tx store.Tx) (err error) {
			n, err = tx.CountKMIPObjects(ctx, mount, scope)
			return err
		})
		return n
	}
	if a, b, c := count("m1", "s1"), count("m1", ""), count("m2", ""); a != 4 || b != 5 || c != 1 {
		t.Fatalf("counts: %d %d %d", a, b, c)
	}
	var n int
	update(t, st, func(ctx context.Context, tx store.Tx) (err error) {
		n, err = tx.DeleteKMIPObjects(ctx, "m1", "s1")
		return err
	})
	if n != 4 || count("m1", "s1") != 0 || count("m1", "s2") != 1 || count("m2", "") != 1 {
		t.Fatalf("after deleting scope s1: deleted %d", n)
	}
	update(t, st, func(ctx context.Context, tx store.Tx) (err error) {
		n, err = tx.DeleteKMIPObjects(ctx, "m1", "")
		return err
	})
	if n != 1 || count("m1", "") != 0 || count("m2", "") != 1 {
		t.Fatalf("after deleting mount m1: deleted %d", n)
	}
	// The attributes went with their objects: a new object may reuse an ID.
	createKMIP(t, st, kmipObject("m1", "s1", "past"))
	got, err := getKMIP(t, st, "m1", "s1", "past")
	checkErr(t, "get recreated", err, nil)
	sameKMIP(t, got, kmipObject("m1", "s1", "past"))
}
