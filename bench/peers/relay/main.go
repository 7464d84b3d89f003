// Command relay is a bare WebSocket group relay built on gorilla/websocket: the cheapest
// honest Go server for the "watch party chat" traffic shape, used as a peer by
// scripts/peer_bench.sh.
//
// Protocol (the same as `owp-server --fanout-ceiling`):
//   - a connection's first text message names its group;
//   - every later text message is sent, verbatim and without decoding, to every member of
//     that group, the sender included.
//
// Each connection has one writer goroutine fed by a bounded channel. A member whose channel
// is full is too slow: it is dropped (closed), so a slow client never delays the others or
// grows memory without bound (owp-server does the same with its 1008 close).
//
// Every message is framed once (websocket.PreparedMessage) and the frame is shared by all
// recipients, as a careful fan-out server would do.
package main

import (
	"flag"
	"log"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

var (
	listen    = flag.String("listen", "127.0.0.1:3100", "listen address host:port")
	queueSize = flag.Int("queue", 256, "outbound queue per connection, messages; a full queue drops the connection")
	maxSize   = flag.Int64("max-message-size", 65536, "largest inbound message, bytes")
	writeWait = flag.Duration("write-timeout", 10*time.Second, "deadline of one frame write")
)

// client is one WebSocket connection.
type client struct {
	conn  *websocket.Conn
	send  chan *websocket.PreparedMessage // bounded: see --queue
	done  chan struct{}                   // closed once when the connection is dropped
	once  sync.Once
	group string // set by the reader before the client joins a group; read-only afterwards
}

// drop closes the connection once; the reader then fails, leaves the group and returns.
func (c *client) drop() {
	c.once.Do(func() {
		close(c.done)
		_ = c.conn.Close()
	})
}

// hub maps group names to their members.
type hub struct {
	mu     sync.RWMutex
	groups map[string]map[*client]struct{}
}

func (h *hub) join(c *client) {
	h.mu.Lock()
	members := h.groups[c.group]
	if members == nil {
		members = make(map[*client]struct{})
		h.groups[c.group] = members
	}
	members[c] = struct{}{}
	h.mu.Unlock()
}

func (h *hub) leave(c *client) {
	h.mu.Lock()
	if members := h.groups[c.group]; members != nil {
		delete(members, c)
		if len(members) == 0 {
			delete(h.groups, c.group)
		}
	}
	h.mu.Unlock()
}

var dropped atomic.Int64 // connections dropped because their queue was full

// broadcast queues one prepared frame for every member of the sender's group.
func (h *hub) broadcast(group string, pm *websocket.PreparedMessage) {
	h.mu.RLock()
	members := h.groups[group]
	// Non-blocking sends under the read lock: a full queue drops that member only.
	var slow []*client
	for m := range members {
		select {
		case m.send <- pm:
		default:
			slow = append(slow, m)
		}
	}
	h.mu.RUnlock()
	for _, m := range slow {
		dropped.Add(1)
		m.drop()
	}
}

// writer drains the client's queue until the connection is dropped.
func (c *client) writer() {
	for {
		select {
		case pm := <-c.send:
			_ = c.conn.SetWriteDeadline(time.Now().Add(*writeWait))
			if err := c.conn.WritePreparedMessage(pm); err != nil {
				c.drop()
				return
			}
		case <-c.done:
			return
		}
	}
}

var upgrader = websocket.Upgrader{
	ReadBufferSize:    4096,
	WriteBufferSize:   4096,
	EnableCompression: false, // the benchmark offers no compression
	CheckOrigin:       func(*http.Request) bool { return true },
}

func serve(h *hub) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return // Upgrade has answered with an HTTP error
		}
		conn.SetReadLimit(*maxSize)
		c := &client{conn: conn, send: make(chan *websocket.PreparedMessage, *queueSize), done: make(chan struct{})}
		go c.writer()
		defer c.drop()
		joined := false
		for {
			kind, data, err := conn.ReadMessage()
			if err != nil {
				break
			}
			if kind != websocket.TextMessage {
				continue // binary frames are ignored
			}
			if !joined {
				c.group = string(data)
				h.join(c)
				joined = true
				continue
			}
			pm, err := websocket.NewPreparedMessage(websocket.TextMessage, data)
			if err != nil {
				continue
			}
			h.broadcast(c.group, pm)
		}
		if joined {
			h.leave(c)
		}
	}
}

func main() {
	flag.Parse()
	h := &hub{groups: make(map[string]map[*client]struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/", serve(h)) // any path upgrades (/ws included)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	go func() {
		for range time.Tick(10 * time.Second) {
			if n := dropped.Load(); n > 0 {
				log.Printf("relay: %d connections dropped so far (outbound queue full)", n)
			}
		}
	}()
	log.Printf("relay listening on %s", *listen)
	log.Fatal(http.ListenAndServe(*listen, mux))
}
