package loadgen

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestCompareOnOff(t *testing.T) {
	// A made-up server: with the feature off it saturates at 1000/s from 4
	// clients on; on, each request waits longer, so it needs more clients
	// to saturate and then runs at 900/s. Each round adds drift to the
	// rates, which the medians must see through.
	var on bool
	var switches int
	calls := map[int]int{}
	set := func(v bool) error {
		if v == on {
			return errors.New("set called without a change of mode")
		}
		on, switches = v, switches+1
		return nil
	}
	// first[n] lists, per round, the mode count n was measured in first.
	first := map[int][]bool{}
	rate := func(n int) (Sample, error) {
		calls[n]++
		if calls[n]%2 == 1 {
			first[n] = append(first[n], on)
		}
		drift := []float64{0, 50, -20}[(calls[n]-1)/2]
		if on {
			return Sample{Rate: min(900, 100*float64(n)) + drift, ServerCPU: 110 + drift, ClientCPU: 30}, nil
		}
		return Sample{Rate: min(1000, 250*float64(n)) + drift, ServerCPU: 100 - drift, ClientCPU: 30}, nil
	}
	r, err := CompareOnOff([]int{1, 4, 16}, 3, set, rate)
	if err != nil {
		t.Fatal(err)
	}
	if on {
		t.Error("the feature was left on")
	}
	for n, c := range calls {
		if c != 6 {
			t.Errorf("count %d measured %d times, want 6 (3 rounds, 2 modes)", n, c)
		}
	}
	// Which mode goes first alternates from round to round for each count
	// (and from count to count within a round), so that drift over the run
	// weighs on both; and the mode carries over from one measurement to the
	// next instead of being switched back and forth.
	for i, n := range []int{1, 4, 16} {
		want := []bool{i%2 == 1, i%2 == 0, i%2 == 1}
		if !slices.Equal(first[n], want) {
			t.Errorf("count %d: first mode per round %v, want %v", n, first[n], want)
		}
	}
	if switches != 10 { // 9 in the rounds, and off at the end
		t.Errorf("%d switches for 18 measurements, want 10", switches)
	}
	wantCPU := 10.0 // at the count where the rate with the feature on peaks
	wantOff := []float64{250, 1000, 1000}
	wantOn := []float64{100, 400, 900}
	for i := range r.Counts {
		if r.Off[i].Rate != wantOff[i] || r.On[i].Rate != wantOn[i] {
			t.Errorf("count %d: off %v on %v, want the medians %v and %v", r.Counts[i], r.Off[i], r.On[i], wantOff[i], wantOn[i])
		}
	}
	off, onPeak, offAt, onAt := r.Peak()
	if off.Rate != 1000 || onPeak.Rate != 900 || offAt != 4 || onAt != 16 {
		t.Errorf("peaks %v at %d and %v at %d", off, offAt, onPeak, onAt)
	}
	if got := r.Overhead(); math.Abs(got-10) > 1e-9 {
		t.Errorf("overhead %v%%, want 10%%", got)
	}
	if off.ServerCPU != 100 || onPeak.ServerCPU != 110 || off.ClientCPU != 30 {
		t.Errorf("CPU per operation at the peaks: off %+v, on %+v", off, onPeak)
	}
	if got := r.CPUOverhead(); math.Abs(got-wantCPU) > 1e-9 {
		t.Errorf("CPU overhead %v%%, want %v%%", got, wantCPU)
	}
	var b strings.Builder
	r.Print(&b, "clients", "req/s")
	if !strings.Contains(b.String(), "peaks at 4 (off) and 16 (on) clients; at 16, CPU per operation +10.0% with the feature on") ||
		!strings.Contains(b.String(), "feature on was highest at the largest count") || strings.Contains(b.String(), "feature off was highest") {
		t.Errorf("table:\n%s", b.String())
	}
}

func TestCompareOnOffStops(t *testing.T) {
	boom := errors.New("boom")
	on := false
	_, err := CompareOnOff([]int{1, 2}, 3, func(v bool) error { on = v; return nil }, func(n int) (Sample, error) {
		if on && n == 2 {
			return Sample{}, boom
		}
		return Sample{Rate: 1}, nil
	})
	if !errors.Is(err, boom) {
		t.Errorf("err %v, want the measurement's error", err)
	}
}

func TestCounts(t *testing.T) {
	t.Setenv("LOADGEN_TEST_COUNTS", "")
	if got, err := Counts("LOADGEN_TEST_COUNTS", []int{8}); err != nil || len(got) != 1 || got[0] != 8 {
		t.Errorf("unset: %v %v", got, err)
	}
	t.Setenv("LOADGEN_TEST_COUNTS", "256, 8,64,8")
	if got, err := Counts("LOADGEN_TEST_COUNTS", nil); err != nil || !slices.Equal(got, []int{8, 64, 256}) {
		t.Errorf("list: %v %v", got, err)
	}
	for _, bad := range []string{"8,,64", "0", "-1", "eight"} {
		t.Setenv("LOADGEN_TEST_COUNTS", bad)
		if _, err := Counts("LOADGEN_TEST_COUNTS", nil); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
