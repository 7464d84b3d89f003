// Command centrifuge is a minimal Centrifuge (github.com/centrifugal/centrifuge) node used as
// a peer by scripts/peer_bench.sh: a real pub/sub server library with its own client protocol,
// per-connection queues and write batching.
//
// It is built against the Debian package golang-github-centrifugal-centrifuge-dev
// (0.15.0+git20210306, client protocol v1 from golang-github-centrifugal-protocol-dev 0.3.6).
//
//   - WebSocket handler at /connection/websocket, JSON protocol (the default; protobuf only
//     with ?format=protobuf), no compression.
//   - Anonymous connect: OnConnecting gives every connection credentials with a user id.
//   - Any client may subscribe to any channel and publish into it. A publication goes to every
//     subscriber of the channel, the publisher included when subscribed. No history, no
//     presence, no join/leave messages: the cheapest configuration Centrifuge offers.
package main

import (
	"context"
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"

	"github.com/centrifugal/centrifuge"
)

var (
	listen   = flag.String("listen", "127.0.0.1:3200", "listen address host:port")
	logLevel = flag.String("log-level", "error", "centrifuge log level: debug|info|error|none")
)

func main() {
	flag.Parse()

	cfg := centrifuge.DefaultConfig
	switch *logLevel {
	case "debug":
		cfg.LogLevel = centrifuge.LogLevelDebug
	case "info":
		cfg.LogLevel = centrifuge.LogLevelInfo
	case "none":
		cfg.LogLevel = centrifuge.LogLevelNone
	default:
		cfg.LogLevel = centrifuge.LogLevelError
	}
	cfg.LogHandler = func(e centrifuge.LogEntry) { log.Printf("centrifuge: %s %v", e.Message, e.Fields) }

	node, err := centrifuge.New(cfg)
	if err != nil {
		log.Fatal(err)
	}

	// Anonymous connect: each connection gets a distinct user id so no per-user limit applies.
	var nextUser atomic.Int64
	node.OnConnecting(func(ctx context.Context, e centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		return centrifuge.ConnectReply{
			Credentials: &centrifuge.Credentials{UserID: "anon-" + strconv.FormatInt(nextUser.Add(1), 10)},
		}, nil
	})

	node.OnConnect(func(client *centrifuge.Client) {
		// Every channel is open for subscription.
		client.OnSubscribe(func(e centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
			cb(centrifuge.SubscribeReply{}, nil)
		})
		// Every client may publish; an empty PublishReply lets Centrifuge publish the data
		// as sent to all the channel's subscribers (no history, no client info attached).
		client.OnPublish(func(e centrifuge.PublishEvent, cb centrifuge.PublishCallback) {
			cb(centrifuge.PublishReply{}, nil)
		})
	})

	if err := node.Run(); err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle("/connection/websocket", centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{
		Compression: false, // the benchmark offers no compression
	}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })

	go func() {
		log.Printf("centrifuge node listening on %s (ws path /connection/websocket)", *listen)
		if err := http.ListenAndServe(*listen, mux); err != nil {
			log.Fatal(err)
		}
	}()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	_ = node.Shutdown(context.Background())
}
