package loadgen

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// OnOff is the throughput of a server with a feature off and on (e.g. an
// audit device), measured over several client counts. A closed loop of too
// few clients leaves the server idle part of the time, and a feature that
// adds latency (a durable write before each answer) then costs throughput
// that a busier server would not lose; the server's throughput in a mode is
// therefore its peak over the counts. The rates at each count are kept too:
// they show what the feature costs a client that keeps few requests in
// flight.
type OnOff struct {
	Counts  []int
	Off, On []Sample // per count, the medians over the rounds
}

// Sample is one closed-loop measurement: the rate, and the CPU time per
// operation (in µs) of this process, the server, and of a load generator
// in a process of its own (0 if the clients ran in this process, whose
// figure then includes theirs).
type Sample struct {
	Rate      float64
	ServerCPU float64
	ClientCPU float64
}

// CPUTime is the CPU time, user and system, this process has used so far.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// CompareOnOff measures rate(count, on) in rounds; each round measures every
// count with the feature off and on, in an order that alternates from round
// to round, so that drift over the run (a growing file, a warmer cache)
// weighs on both modes alike. set switches the feature before each
// measurement that needs the other mode.
func CompareOnOff(counts []int, rounds int, set func(on bool) error, measure func(count int) (Sample, error)) (OnOff, error) {
	r := OnOff{Counts: counts}
	off := make([][]Sample, len(counts))
	on := make([][]Sample, len(counts))
	mode := false
	for round := range rounds {
		for i, n := range counts {
			order := []bool{false, true}
			if (round+i)%2 == 1 {
				order = []bool{true, false}
			}
			for _, want := range order {
				if want != mode {
					if err := set(want); err != nil {
						return r, err
					}
					mode = want
				}
				v, err := measure(n)
				if err != nil {
					return r, err
				}
				if want {
					on[i] = append(on[i], v)
				} else {
					off[i] = append(off[i], v)
				}
			}
		}
	}
	if mode {
		if err := set(false); err != nil {
			return r, err
		}
	}
	for i := range counts {
		r.Off = append(r.Off, medians(off[i]))
		r.On = append(r.On, medians(on[i]))
	}
	return r, nil
}

// medians is the median of each field, each taken on its own.
func medians(v []Sample) Sample {
	field := func(f func(Sample) float64) float64 {
		var xs []float64
		for _, s := range v {
			xs = append(xs, f(s))
		}
		return median(xs)
	}
	return Sample{
		Rate:      field(func(s Sample) float64 { return s.Rate }),
		ServerCPU: field(func(s Sample) float64 { return s.ServerCPU }),
		ClientCPU: field(func(s Sample) float64 { return s.ClientCPU }),
	}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Peak returns the measurement of each mode with the highest rate.
func (r OnOff) Peak() (off, on Sample, offAt, onAt int) {
	for i, n := range r.Counts {
		if r.Off[i].Rate > off.Rate {
			off, offAt = r.Off[i], n
		}
		if r.On[i].Rate > on.Rate {
			on, onAt = r.On[i], n
		}
	}
	return off, on, offAt, onAt
}

// Overhead is how much lower the peak rate with the feature on is, in
// percent of the peak with it off.
func (r OnOff) Overhead() float64 {
	off, on, _, _ := r.Peak()
	return overhead(off.Rate, on.Rate)
}

// CPUOverhead is how much more server CPU an operation takes with the
// feature on, in percent, at the count where the rate with it on peaks
// (both modes at the same count: what an operation costs depends on how
// many are in flight). With the clients on other hosts and the server's
// cores busy, throughput falls by about CPUOverhead/(100+CPUOverhead).
func (r OnOff) CPUOverhead() float64 {
	_, _, _, onAt := r.Peak()
	i := slices.Index(r.Counts, onAt)
	if i < 0 || r.Off[i].ServerCPU == 0 {
		return 0
	}
	return 100 * (r.On[i].ServerCPU - r.Off[i].ServerCPU) / r.Off[i].ServerCPU
}

func overhead(off, on float64) float64 {
	if off == 0 {
		return 0
	}
	return 100 * (off - on) / off
}

// Print writes the rates per count and the peaks as a table; clients names
// what a count counts (connections, workers).
func (r OnOff) Print(w io.Writer, clients, unit string) {
	apart := false
	for i := range r.Counts {
		apart = apart || r.Off[i].ClientCPU > 0 || r.On[i].ClientCPU > 0
	}
	server := "server µs/op"
	if !apart {
		server = "process µs/op" // the clients' CPU is in it
	}
	fmt.Fprintf(w, "%12s %14s %14s %9s %16s %16s\n", "", "", "", "", server, "client µs/op")
	fmt.Fprintf(w, "%12s %14s %14s %9s %8s %7s %8s %7s\n", clients, "off "+unit, "on "+unit, "overhead", "off", "on", "off", "on")
	row := func(label string, off, on Sample) {
		fmt.Fprintf(w, "%12s %14.0f %14.0f %8.1f%% %8.1f %7.1f %8.1f %7.1f\n", label, off.Rate, on.Rate, overhead(off.Rate, on.Rate),
			off.ServerCPU, on.ServerCPU, off.ClientCPU, on.ClientCPU)
	}
	for i, n := range r.Counts {
		row(strconv.Itoa(n), r.Off[i], r.On[i])
	}
	off, on, offAt, onAt := r.Peak()
	row("peak", off, on)
	fmt.Fprintf(w, "peaks at %d (off) and %d (on) %s; at %d, CPU per operation %+.1f%% with the feature on\n",
		offAt, onAt, clients, onAt, r.CPUOverhead())
	if !apart {
		fmt.Fprintf(w, "note: the clients ran in this process, so its CPU per operation includes theirs\n")
	}
	largest := slices.Max(r.Counts)
	for _, m := range []struct {
		name string
		at   int
	}{{"off", offAt}, {"on", onAt}} {
		if m.at == largest {
			fmt.Fprintf(w, "note: the rate with the feature %s was highest at the largest count; its peak may be higher\n", m.name)
		}
	}
}

// Counts reads a list of client counts ("8,64,256") from the environment
// variable name, or returns def; the list comes back sorted, each count
// once.
func Counts(name string, def []int) ([]int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	var out []int
	for f := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%s: %q is not a list of positive counts", name, v)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
