// porcupine-driver times Porcupine's checker in-process on history files,
// for bench/check-vs-porcupine.sh. For each file it prints one line:
//
//	FILE OPS VERDICT BEST_MS
//
// where VERDICT is linearizable or not-linearizable and BEST_MS the best of
// three runs of porcupine.CheckEvents (parsing excluded). Two formats:
// Jepsen's text logs of etcd (`INFO jepsen.util - P :invoke :write 3`),
// checked against a cas register whose failed cas saw another value and
// whose timed-out ops may take effect at any later point; and Porcupine's
// key-value logs (EDN maps with :get, :put, :append on string keys),
// checked per key. The models follow the semantics of Porcupine's own tests
// on these files, so the verdicts are the ones its tests expect.
package main

import (
	"fmt"
	"hash/fnv"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// ---------------------------------------------------------------- etcd

const nilValue = -1 << 40

type registerCall struct {
	op       byte // 'r', 'w', 'c'
	arg, new int
}

type registerReturn struct {
	value   int // a read's result, nilValue for nil
	casOk   bool
	unknown bool // timed out: anything may have happened
}

var registerModel = porcupine.Model{
	Init: func() interface{} { return nilValue },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		current := state.(int)
		call := input.(registerCall)
		ret := output.(registerReturn)
		switch call.op {
		case 'r':
			return ret.unknown || ret.value == current, current
		case 'w':
			return true, call.arg
		default:
			matches := call.arg == current
			next := current
			if matches {
				next = call.new
			}
			return ret.unknown || matches == ret.casOk, next
		}
	},
}

func parseEtcd(lines []string) ([]porcupine.Event, int) {
	var events []porcupine.Event
	pending := map[int]int{}
	next := 0
	for _, line := range lines {
		fields := strings.Fields(line)
		if len(fields) < 7 || fields[1] != "jepsen.util" {
			continue
		}
		process, _ := strconv.Atoi(fields[3])
		kind, f, value := fields[4], fields[5], strings.Join(fields[6:], " ")
		if kind == ":invoke" {
			call := registerCall{op: f[1]}
			switch f {
			case ":write":
				call.arg, _ = strconv.Atoi(value)
			case ":cas":
				pair := strings.Fields(strings.Trim(value, "[]"))
				call.arg, _ = strconv.Atoi(pair[0])
				call.new, _ = strconv.Atoi(pair[1])
			}
			events = append(events, porcupine.Event{ClientId: process, Kind: porcupine.CallEvent, Value: call, Id: next})
			pending[process] = next
			next++
			continue
		}
		if kind == ":info" {
			continue // stays pending: returns, unknown, at the end
		}
		ret := registerReturn{value: nilValue, casOk: kind == ":ok", unknown: value == ":timed-out"}
		if f == ":read" && value != "nil" && !ret.unknown {
			ret.value, _ = strconv.Atoi(value)
		}
		events = append(events, porcupine.Event{ClientId: process, Kind: porcupine.ReturnEvent, Value: ret, Id: pending[process]})
		delete(pending, process)
	}
	events = closePending(events, pending, registerReturn{unknown: true})
	return events, next
}

func closePending(events []porcupine.Event, pending map[int]int, ret interface{}) []porcupine.Event {
	processes := make([]int, 0, len(pending))
	for p := range pending {
		processes = append(processes, p)
	}
	sort.Ints(processes)
	for _, p := range processes {
		events = append(events, porcupine.Event{ClientId: p, Kind: porcupine.ReturnEvent, Value: ret, Id: pending[p]})
	}
	return events
}

// ------------------------------------------------------------------ kv

type kvCall struct {
	op         byte // 'g', 'p', 'a'
	key, value string
}

type kvReturn struct{ value string }

var kvModel = porcupine.Model{
	PartitionEvent: func(history []porcupine.Event) [][]porcupine.Event {
		byKey := map[string][]porcupine.Event{}
		keyOf := map[int]string{}
		var keys []string
		for _, e := range history {
			if e.Kind == porcupine.CallEvent {
				keyOf[e.Id] = e.Value.(kvCall).key
			}
			key := keyOf[e.Id]
			if _, seen := byKey[key]; !seen {
				keys = append(keys, key)
			}
			byKey[key] = append(byKey[key], e)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Event, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() interface{} { return "" },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		current := state.(string)
		call := input.(kvCall)
		switch call.op {
		case 'g':
			return output.(kvReturn).value == current, current
		case 'p':
			return true, call.value
		default:
			return true, current + call.value
		}
	},
	Hash: func(state interface{}) uint64 {
		h := fnv.New64a()
		h.Write([]byte(state.(string)))
		return h.Sum64()
	},
}

// field returns the text after `name ` up to the next ", :" or "}".
func field(line, name string) string {
	at := strings.Index(line, name+" ")
	if at < 0 {
		return ""
	}
	rest := line[at+len(name)+1:]
	end := strings.Index(rest, ", :")
	if end < 0 {
		end = strings.LastIndex(rest, "}")
	}
	return strings.TrimSpace(rest[:end])
}

func unquote(s string) string { return strings.TrimSuffix(strings.TrimPrefix(s, "\""), "\"") }

func parseKv(lines []string) ([]porcupine.Event, int) {
	var events []porcupine.Event
	pending := map[int]int{}
	next := 0
	for _, line := range lines {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		process, _ := strconv.Atoi(field(line, ":process"))
		f := field(line, ":f")
		switch field(line, ":type") {
		case ":invoke":
			call := kvCall{op: f[1], key: unquote(field(line, ":key")), value: unquote(field(line, ":value"))}
			events = append(events, porcupine.Event{ClientId: process, Kind: porcupine.CallEvent, Value: call, Id: next})
			pending[process] = next
			next++
		case ":ok":
			ret := kvReturn{value: unquote(field(line, ":value"))}
			events = append(events, porcupine.Event{ClientId: process, Kind: porcupine.ReturnEvent, Value: ret, Id: pending[process]})
			delete(pending, process)
		}
	}
	// An unfinished op returns at the end; Porcupine's tests do the same
	// (no kv file has one).
	return closePending(events, pending, kvReturn{}), next
}

// ---------------------------------------------------------------- main

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: porcupine-driver FILE...")
		os.Exit(2)
	}
	for _, path := range os.Args[1:] {
		text, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		lines := strings.Split(string(text), "\n")
		model, parse := registerModel, parseEtcd
		if strings.Contains(lines[0], "{") {
			model, parse = kvModel, parseKv
		}
		events, ops := parse(lines)
		best := time.Duration(1 << 62)
		verdict := false
		for run := 0; run < 3; run++ {
			start := time.Now()
			verdict = porcupine.CheckEvents(model, events)
			if took := time.Since(start); took < best {
				best = took
			}
		}
		name := "not-linearizable"
		if verdict {
			name = "linearizable"
		}
		fmt.Printf("%s %d %s %.3f\n", path, ops, name, float64(best.Microseconds())/1000)
	}
}
