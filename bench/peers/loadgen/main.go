// Command loadgen drives one WebSocket server with "watch party chat" traffic and measures
// what it delivers. It is independent of owp-server's own owp-bench (Go, gorilla/websocket
// client), so the same generator can drive owp-server and two Go peers (bench/peers/relay and
// bench/peers/centrifuge) with identical traffic. scripts/peer_bench.sh runs it.
//
// Traffic: `rooms` groups of `members` connections. After setup every member sends `rate`
// messages/s (a time.Ticker per member, no random jitter; members' phases are spread evenly
// over one interval so a room does not send in bursts). A message carries its send time (Unix
// ns) and a sequence number; the server delivers it to every member of its group, the sender
// included, so the offered load is rooms*members*rate*members deliveries/s.
//
// Measured window: [start+warmup, start+warmup+duration]. A delivery counts when it is
// received inside the window; its latency is receive time minus the embedded send time (one
// machine, one clock). With --server-pid the server's CPU time (utime+stime from
// /proc/PID/stat) and RSS are sampled at the window's two ends by this process itself, so the
// CPU figure covers exactly the deliveries counted. Lines "WINDOW START" / "WINDOW END" are
// printed to stderr at those moments.
//
// Dialects (--target):
//
//	relay       first text message = group name "room-N"; every later message is relayed
//	            verbatim. Also owp-server --fanout-ceiling (alias --target owp-ceiling).
//	            The message is shaped like owp-server's chat_message broadcast (same fields,
//	            same size), so every server writes about the same bytes per delivery.
//	centrifuge  Centrifuge client protocol v1, JSON (the Debian centrifuge 0.15 / protocol
//	            0.3.6 wire format): {"id":1,"method":0,"params":{}} (connect),
//	            {"id":2,"method":1,"params":{"channel":"room-N"}} (subscribe),
//	            {"id":k,"method":3,"params":{"channel":"room-N","data":{…}}} (publish).
//	            Replies are {"id":k,"result":…} or {"id":k,"error":…}; a publication push is a
//	            reply without id: {"result":{"channel":"room-N","data":{"data":{…}}}}. The server
//	            may put several replies in one frame, separated by newlines.
//	owp         OpenWatchParty protocol of owp-server (/ws): client_hello and room_list on
//	            connect; member 0 sends create_room and reads room_state (its "room" is the
//	            id); the others send join_room and wait for their room_state; then each sends
//	            chat_message {text:"<send-ns>:<seq>:<padding>"} and every member gets a
//	            chat_message {username, text}. Other message types are ignored; an "error"
//	            message is counted by its code.
//
// No compression is offered.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/bits"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// ---------------------------------------------------------------------------------------------
// Flags

var (
	target       = flag.String("target", "", "owp | owp-ceiling | relay | centrifuge")
	url          = flag.String("url", "", "WebSocket URL (default per target on 127.0.0.1)")
	rooms        = flag.Int("rooms", 1, "number of rooms (groups)")
	members      = flag.Int("members", 20, "connections per room")
	rate         = flag.Float64("rate", 25, "messages per second per member")
	duration     = seconds("duration", 20*time.Second, "measured window (seconds, or a Go duration such as 500ms)")
	warmup       = seconds("warmup", 3*time.Second, "sending before the window opens (seconds or duration)")
	drain        = seconds("drain", 2*time.Second, "wait after sending stops, before closing (seconds or duration)")
	payloadBytes = flag.Int("payload-bytes", 100, "length of the chat text: \"<send-ns>:<seq>:\" padded with 'x'")
	jsonOut      = flag.String("json", "", "write the result as JSON to this path")
	label        = flag.String("label", "", "free text stored in the result (e.g. server name)")
	serverPID    = flag.Int("server-pid", 0, "PID of the server process: sample its CPU time and RSS at the window's ends")
	clockTicks   = flag.Int("clk-tck", 100, "kernel clock ticks per second for /proc/PID/stat (USER_HZ; 100 on Linux x86)")
	ramp         = flag.Float64("ramp", 1000, "new connections per second during setup")
	setupPar     = flag.Int("setup-concurrency", 16, "rooms set up concurrently")
	setupTimeout = flag.Duration("setup-timeout", 10*time.Second, "longest wait for one setup reply")
	progress     = flag.Duration("progress", 0, "print delivered/s every interval (0 = off)")
	dump         = flag.Int("dump", 0, "print the first N frames received (all members) to stderr, to check a dialect")
)

// secondsValue is a duration flag that also takes a plain number of seconds ("5", "0.5").
type secondsValue time.Duration

func (s *secondsValue) String() string { return time.Duration(*s).String() }
func (s *secondsValue) Set(v string) error {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		*s = secondsValue(f * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(v)
	*s = secondsValue(d)
	return err
}

func seconds(name string, def time.Duration, usage string) *time.Duration {
	d := def
	flag.Var((*secondsValue)(&d), name, usage)
	return &d
}

// ---------------------------------------------------------------------------------------------
// Latency histogram: log-linear buckets over microseconds, 32 sub-buckets per power of two
// (relative error under ~3 %). One per member, owned by its reader goroutine; merged at the end.

const subBits = 5
const subCount = 1 << subBits             // 32
const histSize = 2*subCount + 40*subCount // covers values up to 2^45 µs

type histogram struct {
	counts [histSize]uint32
	n      int64
	max    int64 // µs, exact
}

func bucketOf(v int64) int {
	if v < 2*subCount {
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - (subBits + 1) // v>>shift in [32, 63]
	idx := 2*subCount + (shift-1)*subCount + int(v>>shift) - subCount
	if idx >= histSize {
		idx = histSize - 1
	}
	return idx
}

// bucketMid is a representative value (µs) of bucket i.
func bucketMid(i int) float64 {
	if i < 2*subCount {
		return float64(i)
	}
	shift := (i-2*subCount)/subCount + 1
	base := int64((i-2*subCount)%subCount+subCount) << shift
	return float64(base) + float64(int64(1)<<shift)/2
}

func (h *histogram) record(us int64) {
	if us < 0 {
		us = 0
	}
	h.counts[bucketOf(us)]++
	h.n++
	if us > h.max {
		h.max = us
	}
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	if o.max > h.max {
		h.max = o.max
	}
}

// quantile in milliseconds.
func (h *histogram) quantile(q float64) float64 {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	if rank < 1 {
		rank = 1
	}
	var cum int64
	for i, c := range h.counts {
		cum += int64(c)
		if cum >= rank {
			return math.Min(bucketMid(i), float64(h.max)) / 1000
		}
	}
	return float64(h.max) / 1000
}

// ---------------------------------------------------------------------------------------------
// Shared run state

var (
	windowStart atomic.Int64 // Unix ns; MaxInt64 until the senders start
	windowEnd   atomic.Int64
	closing     atomic.Bool // set before the generator closes its own connections

	errMu      sync.Mutex
	errorKinds = map[string]int64{} // error kind -> count
)

func countError(kind string) {
	errMu.Lock()
	errorKinds[kind]++
	errMu.Unlock()
}

func inWindow(ns int64) bool { return ns >= windowStart.Load() && ns < windowEnd.Load() }

// member is one connection of one room.
type member struct {
	room, index int
	conn        *websocket.Conn
	roomKey     string // owp: the room id; relay/centrifuge: "room-N"
	clientID    string // a 36-character id for the relay's chat-shaped text

	hist      histogram // latency, deliveries received in the window (reader-owned)
	delivered int64     // deliveries received in the window (reader-owned)
	bytesIn   int64     // bytes of frames received in the window (reader-owned)
	total     atomic.Int64
	sent      atomic.Int64 // messages sent in the window
	sentAll   atomic.Int64
}

// delivery records one delivered message whose embedded send time is sendNs.
func (m *member) delivery(sendNs, recvNs int64) {
	m.total.Add(1)
	if !inWindow(recvNs) {
		return
	}
	m.delivered++
	m.hist.record((recvNs - sendNs) / 1000)
}

// ---------------------------------------------------------------------------------------------
// Dialects

type dialect interface {
	// setupRoom connects and prepares every member of room r (called in member order).
	setupRoom(r int, ms []*member) error
	// message builds the text for one chat message carrying text.
	message(buf []byte, m *member, text []byte, seq uint64) []byte
	// frame handles one received text frame.
	frame(m *member, data []byte, recvNs int64)
}

var dialer = websocket.Dialer{
	HandshakeTimeout:  10 * time.Second,
	EnableCompression: false,
	ReadBufferSize:    8192,
	WriteBufferSize:   4096,
}

// setupPacer spaces new connections to --ramp per second across all rooms.
var setupPacer = struct {
	sync.Mutex
	next time.Time
}{}

func dial(u string) (*websocket.Conn, error) {
	setupPacer.Lock()
	now := time.Now()
	if setupPacer.next.Before(now) {
		setupPacer.next = now
	}
	at := setupPacer.next
	setupPacer.next = at.Add(time.Duration(float64(time.Second) / *ramp))
	setupPacer.Unlock()
	time.Sleep(time.Until(at))
	conn, resp, err := dialer.Dial(u, http.Header{})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: %w (HTTP %d)", u, err, resp.StatusCode)
		}
		return nil, fmt.Errorf("dial %s: %w", u, err)
	}
	return conn, nil
}

// textField finds `"text":"` in data and parses the send time that starts the text.
func textSendNs(data []byte) (int64, bool) {
	i := bytes.Index(data, []byte(`"text":"`))
	if i < 0 {
		return 0, false
	}
	i += len(`"text":"`)
	var v int64
	j := i
	for ; j < len(data) && data[j] >= '0' && data[j] <= '9'; j++ {
		v = v*10 + int64(data[j]-'0')
	}
	if j == i || j >= len(data) || data[j] != ':' {
		return 0, false
	}
	return v, true
}

// sendTimeOf is the fallback when the fast path does not match: a full JSON decode.
func sendTimeFromText(text string) (int64, bool) {
	head, _, ok := strings.Cut(text, ":")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(head, 10, 64)
	return v, err == nil
}

// --- relay (and owp-server --fanout-ceiling) ---

type relayDialect struct{}

func (relayDialect) setupRoom(r int, ms []*member) error {
	for _, m := range ms {
		conn, err := dial(*url)
		if err != nil {
			return err
		}
		m.conn = conn
		m.roomKey = fmt.Sprintf("room-%d", r)
		if err := conn.WriteMessage(websocket.TextMessage, []byte(m.roomKey)); err != nil {
			return err
		}
	}
	return nil
}

func (relayDialect) message(buf []byte, m *member, text []byte, seq uint64) []byte {
	// The shape and size of owp-server's chat_message broadcast (36-character room and client
	// ids, a username, ts and server_ts in ms), so a relay writes the bytes owp-server writes.
	ms := strconv.FormatInt(time.Now().UnixMilli(), 10)
	buf = append(buf, `{"type":"chat_message","room":"`...)
	buf = append(buf, fakeUUID(m.room, 0)...)
	buf = append(buf, `","client":"`...)
	buf = append(buf, m.clientID...)
	buf = append(buf, `","payload":{"username":"m","text":"`...)
	buf = append(buf, text...)
	buf = append(buf, `"},"ts":`...)
	buf = append(buf, ms...)
	buf = append(buf, `,"server_ts":`...)
	buf = append(buf, ms...)
	buf = append(buf, '}')
	return buf
}

func (relayDialect) frame(m *member, data []byte, recvNs int64) {
	if ns, ok := textSendNs(data); ok {
		m.delivery(ns, recvNs)
		return
	}
	countError("relay: unexpected frame")
}

// --- Centrifuge client protocol v1, JSON ---

type centrifugeDialect struct{}

// centrifugeReply is a reply of protocol v1 (a push when ID is 0).
type centrifugeReply struct {
	ID    uint32 `json:"id"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Result json.RawMessage `json:"result"`
}

// awaitReply reads frames until the reply with id arrives (setup only).
func awaitReply(conn *websocket.Conn, id uint32) error {
	_ = conn.SetReadDeadline(time.Now().Add(*setupTimeout))
	defer conn.SetReadDeadline(time.Time{})
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return err
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			var r centrifugeReply
			if err := json.Unmarshal(line, &r); err != nil {
				return fmt.Errorf("centrifuge: bad reply %q: %w", line, err)
			}
			if r.ID != id {
				continue
			}
			if r.Error != nil {
				return fmt.Errorf("centrifuge: command %d: error %d %s", id, r.Error.Code, r.Error.Message)
			}
			return nil
		}
	}
}

func (centrifugeDialect) setupRoom(r int, ms []*member) error {
	for _, m := range ms {
		conn, err := dial(*url)
		if err != nil {
			return err
		}
		m.conn = conn
		m.roomKey = fmt.Sprintf("room-%d", r)
		if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"method":0,"params":{}}`)); err != nil {
			return err
		}
		if err := awaitReply(conn, 1); err != nil {
			return err
		}
		sub := fmt.Sprintf(`{"id":2,"method":1,"params":{"channel":%q}}`, m.roomKey)
		if err := conn.WriteMessage(websocket.TextMessage, []byte(sub)); err != nil {
			return err
		}
		if err := awaitReply(conn, 2); err != nil {
			return err
		}
	}
	return nil
}

func (centrifugeDialect) message(buf []byte, m *member, text []byte, seq uint64) []byte {
	// Publish data carries what owp-server's broadcast carries (client id, username, text).
	buf = append(buf, `{"id":`...)
	buf = strconv.AppendUint(buf, seq+3, 10) // ids 1 and 2 were connect and subscribe
	buf = append(buf, `,"method":3,"params":{"channel":"`...)
	buf = append(buf, m.roomKey...)
	buf = append(buf, `","data":{"client":"`...)
	buf = append(buf, m.clientID...)
	buf = append(buf, `","username":"m","text":"`...)
	buf = append(buf, text...)
	buf = append(buf, `"}}}`...)
	return buf
}

var pushPrefix = []byte(`{"result":{"channel":`) // a reply without id whose push type is 0 (publication)

func (centrifugeDialect) frame(m *member, data []byte, recvNs int64) {
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(line) == 0 {
			continue
		}
		if bytes.HasPrefix(line, pushPrefix) {
			if ns, ok := textSendNs(line); ok {
				m.delivery(ns, recvNs)
				continue
			}
		}
		// Not a publication: a publish ack ({"id":k,"result":{}}), an error, or something else.
		if bytes.HasPrefix(line, []byte(`{"id":`)) && !bytes.Contains(line, []byte(`"error"`)) {
			continue // the ack of one of our publishes
		}
		var r centrifugeReply
		if err := json.Unmarshal(line, &r); err != nil {
			countError("centrifuge: undecodable frame")
			continue
		}
		if r.Error != nil {
			countError(fmt.Sprintf("centrifuge: error %d %s", r.Error.Code, r.Error.Message))
		}
	}
}

// --- OpenWatchParty (owp-server) ---

type owpDialect struct{}

type owpEnvelope struct {
	Type    string          `json:"type"`
	Room    string          `json:"room"`
	Payload json.RawMessage `json:"payload"`
}

// awaitType reads until a message of type want arrives (setup only); an error message fails.
func awaitType(conn *websocket.Conn, want string) (owpEnvelope, error) {
	_ = conn.SetReadDeadline(time.Now().Add(*setupTimeout))
	defer conn.SetReadDeadline(time.Time{})
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return owpEnvelope{}, fmt.Errorf("owp: waiting for %s: %w", want, err)
		}
		var e owpEnvelope
		if err := json.Unmarshal(data, &e); err != nil {
			return e, fmt.Errorf("owp: bad message %q: %w", data, err)
		}
		if e.Type == want {
			return e, nil
		}
		if e.Type == "error" {
			return e, fmt.Errorf("owp: waiting for %s: error %s", want, e.Payload)
		}
	}
}

func (owpDialect) setupRoom(r int, ms []*member) error {
	roomID := ""
	for i, m := range ms {
		conn, err := dial(*url)
		if err != nil {
			return err
		}
		m.conn = conn
		if _, err := awaitType(conn, "client_hello"); err != nil {
			return err
		}
		if _, err := awaitType(conn, "room_list"); err != nil {
			return err
		}
		var req string
		if i == 0 {
			req = fmt.Sprintf(`{"type":"create_room","payload":{"name":"bench %d","user_name":"host"},"ts":0}`, r)
		} else {
			req = fmt.Sprintf(`{"type":"join_room","room":%q,"payload":{"user_name":"m"},"ts":0}`, roomID)
		}
		if err := conn.WriteMessage(websocket.TextMessage, []byte(req)); err != nil {
			return err
		}
		state, err := awaitType(conn, "room_state")
		if err != nil {
			return err
		}
		if i == 0 {
			roomID = state.Room
			if roomID == "" {
				return errors.New("owp: room_state without room")
			}
		} else if state.Room != roomID {
			return fmt.Errorf("owp: joined %q, wanted %q", state.Room, roomID)
		}
		m.roomKey = roomID
		// Its reader starts now: the messages other members' joins cause are read (and ignored)
		// as they come, instead of piling up in the server's queue for this connection.
		startReader(m)
	}
	return nil
}

func (owpDialect) message(buf []byte, m *member, text []byte, seq uint64) []byte {
	buf = append(buf, `{"type":"chat_message","room":"`...)
	buf = append(buf, m.roomKey...)
	buf = append(buf, `","payload":{"text":"`...)
	buf = append(buf, text...)
	buf = append(buf, `"},"ts":0}`...)
	return buf
}

var owpChat = []byte(`"type":"chat_message"`)

func (owpDialect) frame(m *member, data []byte, recvNs int64) {
	if bytes.Contains(data, owpChat) {
		if ns, ok := textSendNs(data); ok {
			m.delivery(ns, recvNs)
			return
		}
	}
	if !bytes.Contains(data, []byte("chat_message")) && !bytes.Contains(data, []byte(`"error"`)) {
		return // participants_update, participant_list, pong, …: not deliveries
	}
	// The slow path: decode fully.
	var e owpEnvelope
	if err := json.Unmarshal(data, &e); err != nil {
		countError("owp: undecodable message")
		return
	}
	switch e.Type {
	case "chat_message":
		var p struct {
			Text string `json:"text"`
		}
		if json.Unmarshal(e.Payload, &p) == nil {
			if ns, ok := sendTimeFromText(p.Text); ok {
				m.delivery(ns, recvNs)
				return
			}
		}
		countError("owp: chat_message without a send time")
	case "error":
		var p struct {
			Code string `json:"code"`
		}
		_ = json.Unmarshal(e.Payload, &p)
		countError("owp: error " + p.Code)
	}
}

// ---------------------------------------------------------------------------------------------
// Reading and sending

var (
	dialectImpl dialect
	readers     sync.WaitGroup
	dumped      atomic.Int64
)

func fakeUUID(a, b int) string { return fmt.Sprintf("00000000-%04x-4000-8000-%012x", b&0xffff, a) }

// errKind is an error without its per-connection detail (addresses): its last ": " part,
// e.g. "broken pipe", "connection reset by peer", "unexpected EOF".
func errKind(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

// startReader reads every frame of m until its connection ends.
func startReader(m *member) {
	readers.Add(1)
	go func() {
		defer readers.Done()
		var buf bytes.Buffer
		for {
			kind, r, err := m.conn.NextReader()
			if err != nil {
				if !closing.Load() {
					var ce *websocket.CloseError
					if errors.As(err, &ce) {
						countError(fmt.Sprintf("disconnected: close %d %s", ce.Code, ce.Text))
					} else {
						countError("disconnected: " + errKind(err))
					}
				}
				return
			}
			buf.Reset()
			if _, err := buf.ReadFrom(r); err != nil {
				continue
			}
			recvNs := time.Now().UnixNano()
			if inWindow(recvNs) {
				m.bytesIn += int64(buf.Len())
			}
			if *dump > 0 && dumped.Add(1) <= int64(*dump) {
				fmt.Fprintf(os.Stderr, "frame to room %d member %d: %q\n", m.room, m.index, buf.Bytes())
			}
			if kind == websocket.TextMessage {
				dialectImpl.frame(m, buf.Bytes(), recvNs)
			}
		}
	}()
}

// sendLoop sends at --rate from start+phase until stop is closed.
func sendLoop(m *member, start time.Time, phase time.Duration, stop <-chan struct{}, done *sync.WaitGroup) {
	defer done.Done()
	interval := time.Duration(float64(time.Second) / *rate)
	select {
	case <-time.After(time.Until(start.Add(phase))):
	case <-stop:
		return
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var seq uint64
	text := make([]byte, 0, *payloadBytes+32)
	msg := make([]byte, 0, *payloadBytes+256)
	for {
		now := time.Now().UnixNano()
		text = strconv.AppendInt(text[:0], now, 10)
		text = append(text, ':')
		text = strconv.AppendUint(text, seq, 10)
		text = append(text, ':')
		for len(text) < *payloadBytes {
			text = append(text, 'x')
		}
		msg = dialectImpl.message(msg[:0], m, text, seq)
		if err := m.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
			// ErrCloseSent: the server closed the connection, which its reader has counted.
			if !closing.Load() && !errors.Is(err, websocket.ErrCloseSent) {
				countError("send failed: " + errKind(err))
			}
			return
		}
		seq++
		m.sentAll.Add(1)
		if inWindow(now) {
			m.sent.Add(1)
		}
		select {
		case <-ticker.C:
		case <-stop:
			return
		}
	}
}

// ---------------------------------------------------------------------------------------------
// Process figures

// procCPU is utime+stime of pid in seconds (from /proc/PID/stat).
func procCPU(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')') // comm may contain spaces
	if i < 0 {
		return 0, errors.New("bad stat")
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state); utime is field 14, stime 15
	if len(f) < 13 {
		return 0, errors.New("short stat")
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / float64(*clockTicks), nil
}

// procMemKB reads VmRSS and VmHWM (KiB) of pid.
func procMemKB(pid int) (rss, hwm int64) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "VmRSS:":
				rss = v
			case "VmHWM:":
				hwm = v
			}
		}
	}
	return
}

func selfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

func loadavg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(data))
}

// ---------------------------------------------------------------------------------------------
// Result

type latency struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
}

type procFigures struct {
	PID                int     `json:"pid"`
	CPUSeconds         float64 `json:"cpu_seconds"`
	Cores              float64 `json:"cores"`
	CPUSecondsPer1000  float64 `json:"cpu_seconds_per_1000_deliveries"`
	RSSKiB             int64   `json:"rss_kib_window_end,omitempty"`
	PeakRSSKiB         int64   `json:"peak_rss_kib,omitempty"`
	MeasuredOverWindow bool    `json:"measured_over_window"`
	SampleError        string  `json:"sample_error,omitempty"`
}

type result struct {
	Label              string           `json:"label,omitempty"`
	Target             string           `json:"target"`
	URL                string           `json:"url"`
	Rooms              int              `json:"rooms"`
	Members            int              `json:"members"`
	Connections        int              `json:"connections"`
	Rate               float64          `json:"rate_per_member"`
	PayloadBytes       int              `json:"payload_bytes"`
	WarmupSeconds      float64          `json:"warmup_seconds"`
	WindowSeconds      float64          `json:"window_seconds"`
	SetupSeconds       float64          `json:"setup_seconds"`
	OfferedPerSecond   float64          `json:"offered_deliveries_per_second"`
	SentInWindow       int64            `json:"sent_in_window"`
	SentPerSecond      float64          `json:"sent_per_second"`
	DeliveredInWindow  int64            `json:"delivered_in_window"`
	DeliveredPerSecond float64          `json:"delivered_per_second"`
	DeliveryRatio      float64          `json:"delivered_over_offered"`
	BytesPerDelivery   float64          `json:"frame_bytes_in_per_delivery"`
	Latency            latency          `json:"latency"`
	Errors             int64            `json:"errors"`
	ErrorKinds         map[string]int64 `json:"error_kinds"`
	Server             *procFigures     `json:"server,omitempty"`
	Loadgen            procFigures      `json:"loadgen"`
	LoadAverageAtStart string           `json:"load_average_at_start"`
	WindowStartUnixNs  int64            `json:"window_start_unix_ns"`
	WindowEndUnixNs    int64            `json:"window_end_unix_ns"`
	Started            string           `json:"started"`
}

// ---------------------------------------------------------------------------------------------

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	flag.Parse()
	switch *target {
	case "relay", "owp-ceiling":
		dialectImpl = relayDialect{}
		if *url == "" {
			if *target == "relay" {
				*url = "ws://127.0.0.1:3100/ws"
			} else {
				*url = "ws://127.0.0.1:3000/ws"
			}
		}
	case "centrifuge":
		dialectImpl = centrifugeDialect{}
		if *url == "" {
			*url = "ws://127.0.0.1:3200/connection/websocket"
		}
	case "owp":
		dialectImpl = owpDialect{}
		if *url == "" {
			*url = "ws://127.0.0.1:3000/ws"
		}
		if *payloadBytes > 480 {
			fail("--payload-bytes %d: owp-server refuses chat text over 500 bytes", *payloadBytes)
		}
	default:
		fail("--target must be owp, owp-ceiling, relay or centrifuge")
	}
	if *rooms < 1 || *members < 1 || *rate <= 0 || *duration <= 0 || *warmup < 0 {
		fail("bad --rooms/--members/--rate/--duration/--warmup")
	}
	windowStart.Store(math.MaxInt64)
	windowEnd.Store(math.MaxInt64)
	res := result{
		Label: *label, Target: *target, URL: *url, Rooms: *rooms, Members: *members,
		Connections: *rooms * *members, Rate: *rate, PayloadBytes: *payloadBytes,
		WarmupSeconds: warmup.Seconds(), WindowSeconds: duration.Seconds(),
		OfferedPerSecond:   float64(*rooms) * float64(*members) * *rate * float64(*members),
		LoadAverageAtStart: loadavg(),
		Started:            time.Now().UTC().Format(time.RFC3339),
	}

	// Setup: rooms in parallel (bounded), members of one room in order.
	all := make([][]*member, *rooms)
	for r := range all {
		all[r] = make([]*member, *members)
		for i := range all[r] {
			all[r][i] = &member{room: r, index: i, clientID: fakeUUID(r, i+1)}
		}
	}
	setupStart := time.Now()
	sem := make(chan struct{}, *setupPar)
	var setupWG sync.WaitGroup
	var setupErr atomic.Value
	for r := range all {
		setupWG.Add(1)
		sem <- struct{}{}
		go func(r int) {
			defer setupWG.Done()
			defer func() { <-sem }()
			if setupErr.Load() != nil {
				return
			}
			if err := dialectImpl.setupRoom(r, all[r]); err != nil {
				setupErr.CompareAndSwap(nil, fmt.Errorf("room %d: %w", r, err))
			}
		}(r)
	}
	setupWG.Wait()
	if err, _ := setupErr.Load().(error); err != nil {
		closing.Store(true)
		for _, ms := range all {
			for _, m := range ms {
				if m.conn != nil {
					m.conn.Close()
				}
			}
		}
		fail("setup failed: %v", err)
	}
	if _, isOWP := dialectImpl.(owpDialect); !isOWP {
		for _, ms := range all {
			for _, m := range ms {
				startReader(m)
			}
		}
	}
	res.SetupSeconds = time.Since(setupStart).Seconds()
	fmt.Fprintf(os.Stderr, "loadgen: %s: %d rooms x %d members set up in %.1f s (%s)\n", *target, *rooms, *members, res.SetupSeconds, *url)
	time.Sleep(300 * time.Millisecond) // the last group joins have landed

	// Senders, with phases spread evenly over one interval.
	start := time.Now().Add(50 * time.Millisecond)
	wStart := start.Add(*warmup)
	wEnd := wStart.Add(*duration)
	windowStart.Store(wStart.UnixNano())
	windowEnd.Store(wEnd.UnixNano())
	interval := time.Duration(float64(time.Second) / *rate)
	stop := make(chan struct{})
	var senders sync.WaitGroup
	n := *rooms * *members
	k := 0
	for _, ms := range all {
		for _, m := range ms {
			senders.Add(1)
			go sendLoop(m, start, time.Duration(int64(interval)*int64(k)/int64(n)), stop, &senders)
			k++
		}
	}

	// Progress lines.
	if *progress > 0 {
		go func() {
			var last int64
			for range time.Tick(*progress) {
				var tot int64
				for _, ms := range all {
					for _, m := range ms {
						tot += m.total.Load()
					}
				}
				fmt.Fprintf(os.Stderr, "loadgen: %.0f deliveries/s\n", float64(tot-last)/progress.Seconds())
				last = tot
			}
		}()
	}

	// The window's ends: sample the server (and this process) exactly there.
	var srvCPU0, srvCPU1, selfCPU0, selfCPU1 float64
	var srvErr error
	time.Sleep(time.Until(wStart))
	selfCPU0 = selfCPU()
	if *serverPID > 0 {
		srvCPU0, srvErr = procCPU(*serverPID)
	}
	fmt.Fprintf(os.Stderr, "WINDOW START %d\n", wStart.UnixNano())
	time.Sleep(time.Until(wEnd))
	selfCPU1 = selfCPU()
	var rss, hwm int64
	if *serverPID > 0 && srvErr == nil {
		srvCPU1, srvErr = procCPU(*serverPID)
		rss, hwm = procMemKB(*serverPID)
	}
	fmt.Fprintf(os.Stderr, "WINDOW END %d\n", wEnd.UnixNano())
	close(stop)
	senders.Wait()
	time.Sleep(*drain)

	// Close and collect.
	closing.Store(true)
	for _, ms := range all {
		for _, m := range ms {
			_ = m.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			_ = m.conn.Close()
		}
	}
	readers.Wait()

	var hist histogram
	var bytesIn int64
	for _, ms := range all {
		for _, m := range ms {
			hist.merge(&m.hist)
			res.DeliveredInWindow += m.delivered
			res.SentInWindow += m.sent.Load()
			bytesIn += m.bytesIn
		}
	}
	win := duration.Seconds()
	res.WindowStartUnixNs, res.WindowEndUnixNs = wStart.UnixNano(), wEnd.UnixNano()
	res.SentPerSecond = float64(res.SentInWindow) / win
	res.DeliveredPerSecond = float64(res.DeliveredInWindow) / win
	res.DeliveryRatio = res.DeliveredPerSecond / res.OfferedPerSecond
	if res.DeliveredInWindow > 0 {
		res.BytesPerDelivery = float64(bytesIn) / float64(res.DeliveredInWindow)
	}
	res.Latency = latency{P50: hist.quantile(0.5), P90: hist.quantile(0.9), P99: hist.quantile(0.99), P999: hist.quantile(0.999), Max: float64(hist.max) / 1000}
	errMu.Lock()
	res.ErrorKinds = errorKinds
	for _, c := range errorKinds {
		res.Errors += c
	}
	errMu.Unlock()
	per1000 := func(cpu float64) float64 {
		if res.DeliveredInWindow == 0 {
			return 0
		}
		return cpu / float64(res.DeliveredInWindow) * 1000
	}
	res.Loadgen = procFigures{PID: os.Getpid(), CPUSeconds: selfCPU1 - selfCPU0, Cores: (selfCPU1 - selfCPU0) / win, MeasuredOverWindow: true}
	res.Loadgen.CPUSecondsPer1000 = per1000(res.Loadgen.CPUSeconds)
	if *serverPID > 0 {
		s := &procFigures{PID: *serverPID, MeasuredOverWindow: true}
		if srvErr != nil {
			s.SampleError = srvErr.Error()
		} else {
			s.CPUSeconds = srvCPU1 - srvCPU0
			s.Cores = s.CPUSeconds / win
			s.CPUSecondsPer1000 = per1000(s.CPUSeconds)
			s.RSSKiB, s.PeakRSSKiB = rss, hwm
		}
		res.Server = s
	}

	// Report.
	fmt.Printf("%s %s: offered %.0f/s, sent %.0f msg/s, delivered %.0f/s (%.1f %%), latency p50 %.2f ms p99 %.2f ms max %.2f ms, errors %d",
		*target, *label, res.OfferedPerSecond, res.SentPerSecond, res.DeliveredPerSecond, 100*res.DeliveryRatio,
		res.Latency.P50, res.Latency.P99, res.Latency.Max, res.Errors)
	if res.Server != nil && res.Server.SampleError == "" {
		fmt.Printf(", server %.2f cores, %.4f CPU s/1000 deliveries, RSS %d MiB", res.Server.Cores, res.Server.CPUSecondsPer1000, res.Server.RSSKiB/1024)
	}
	fmt.Printf(", loadgen %.2f cores\n", res.Loadgen.Cores)
	if len(res.ErrorKinds) > 0 {
		kinds := make([]string, 0, len(res.ErrorKinds))
		for k := range res.ErrorKinds {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			fmt.Printf("  error: %s x%d\n", k, res.ErrorKinds[k])
		}
	}
	if *jsonOut != "" {
		data, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(*jsonOut, append(data, '\n'), 0o644); err != nil {
			fail("write %s: %v", *jsonOut, err)
		}
	}
}
