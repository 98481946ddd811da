// Command simgo runs simulated Envoys against an ADS server: the same proxies, requests
// and ACKs as bench/simclient.py (State of the World) and bench/simdelta.py (--delta),
// from one Go process. The scale bench uses it by default (`--sim go`): the proxies stand
// in for Envoys that would run on machines of their own, yet share the control plane's
// two cores here, and the Python ones spend ~0.2 core-s per endpoint change at 1,000 ×
// 1,000 (these about half that; docs/benchmarks.md). The wire traffic is the same.
//
// Usage: simgo PORT PROXIES.json [--reconnect] [--delta]
//
// PROXIES.json is bench.simclient.proxies_to_json's list of {"id", "metadata"}. Each
// proxy gets a gRPC connection of its own (one TCP connection, as each Envoy has), over
// mutual TLS when its entry names a certificate (as plait's Envoys connect). It
// runs on one OS thread at a time (GOMAXPROCS 1 unless the environment sets it: the bench
// starts two processes; with more, the 1,000 streams' goroutines woke threads through
// futexes, 0.12 against 0.09 core-s per endpoint change at 1,000 × 1,000). It reads
// responses in place (wire.go) and encodes each SotW name list once (sotw.go). It exits
// 0 on SIGTERM or SIGINT; without --reconnect it exits 1 when any stream ends,
// with --reconnect a stream that ends is opened again after a jittered backoff (0-0.5 s,
// doubling to 2 s). The bench starts it with the parent-death signal set.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
)

// proxyJSON is one entry of PROXIES.json; with TLS the proxy speaks mutual TLS with
// that client certificate (PEM files' paths).
type proxyJSON struct {
	ID       string         `json:"id"`
	Metadata map[string]any `json:"metadata"`
	TLS      *struct {
		Chain string `json:"chain"`
		Key   string `json:"key"`
		Roots string `json:"roots"`
	} `json:"tls"`
}

// transport is a proxy's channel credentials: plaintext, or mTLS with its certificate,
// verifying the control plane's serving certificate, which names localhost.
func transport(p proxyJSON) (credentials.TransportCredentials, error) {
	if p.TLS == nil {
		return insecure.NewCredentials(), nil
	}
	cert, err := tls.LoadX509KeyPair(p.TLS.Chain, p.TLS.Key)
	if err != nil {
		return nil, fmt.Errorf("proxy %s: %w", p.ID, err)
	}
	roots, err := os.ReadFile(p.TLS.Roots)
	if err != nil {
		return nil, fmt.Errorf("proxy %s: %w", p.ID, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(roots) {
		return nil, fmt.Errorf("proxy %s: no certificate in %s", p.ID, p.TLS.Roots)
	}
	return credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: "localhost",
	}), nil
}

// stream is one simulated proxy's ADS stream, SotW or delta.
type stream interface {
	// run opens one stream on conn and serves it until it ends; it reports whether any
	// response arrived.
	run(ctx context.Context, conn *grpc.ClientConn) (bool, error)
	// reset forgets the stream's state, as a new stream after a reconnect starts.
	reset()
}

// exchange sends the stream's first requests, then answers each response with what
// onResponse makes of it, until the stream ends; it reports whether a response came.
func exchange[Req, Resp any](
	first []Req, recv func() (Resp, error), send func(Req) error, onResponse func(Resp) ([]Req, error),
) (bool, error) {
	for _, req := range first {
		if err := send(req); err != nil {
			return false, err
		}
	}
	got := false
	for {
		resp, err := recv()
		if err != nil {
			return got, err
		}
		got = true
		out, err := onResponse(resp)
		if err != nil {
			return got, err
		}
		for _, req := range out {
			if err := send(req); err != nil {
				return got, err
			}
		}
	}
}

func node(p proxyJSON) (*core.Node, error) {
	meta, err := structpb.NewStruct(p.Metadata)
	if err != nil {
		return nil, fmt.Errorf("proxy %s: metadata: %w", p.ID, err)
	}
	workload, _ := p.Metadata["WORKLOAD_NAME"].(string)
	return &core.Node{Id: p.ID, Cluster: workload, Metadata: meta}, nil
}

// serve runs one proxy's stream; with reconnect it opens it again whenever it ends.
func serve(
	ctx context.Context, target string, creds credentials.TransportCredentials, s stream, reconnect bool,
) error {
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30)))
	if err != nil {
		return err
	}
	defer conn.Close()
	failures := 0
	for {
		got, err := s.run(ctx, conn)
		if ctx.Err() != nil {
			return nil
		}
		if !reconnect {
			return fmt.Errorf("a stream ended: %v", err)
		}
		if got {
			failures = 1
		} else {
			failures = min(failures+1, 3)
		}
		backoff := time.Duration(rand.Float64() * 0.5 * float64(int(1)<<(failures-1)) * float64(time.Second))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		s.reset()
	}
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: simgo PORT PROXIES.json [--reconnect] [--delta]")
		os.Exit(2)
	}
	reconnect, delta := false, false
	for _, flag := range os.Args[3:] {
		switch flag {
		case "--reconnect":
			reconnect = true
		case "--delta":
			delta = true
		default:
			fmt.Fprintf(os.Stderr, "simgo: unknown flag %q\n", flag)
			os.Exit(2)
		}
	}
	raw, err := os.ReadFile(os.Args[2])
	if err != nil {
		fmt.Fprintf(os.Stderr, "simgo: %v\n", err)
		os.Exit(2)
	}
	var proxies []proxyJSON
	if err := json.Unmarshal(raw, &proxies); err != nil {
		fmt.Fprintf(os.Stderr, "simgo: %s: %v\n", os.Args[2], err)
		os.Exit(2)
	}
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	target := "127.0.0.1:" + os.Args[1]
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	for _, p := range proxies {
		n, err := node(p)
		if err != nil {
			fmt.Fprintf(os.Stderr, "simgo: %v\n", err)
			os.Exit(2)
		}
		creds, err := transport(p)
		if err != nil {
			fmt.Fprintf(os.Stderr, "simgo: %v\n", err)
			os.Exit(2)
		}
		var s stream
		if delta {
			s = newDeltaProxy(n)
		} else {
			s = newSotwProxy(n)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serve(ctx, target, creds, s, reconnect); err != nil {
				cancel(err) // one stream ended: end them all, as the Python clients do
			}
		}()
	}
	wg.Wait()
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		fmt.Fprintf(os.Stderr, "simgo: %v\n", cause)
		os.Exit(1)
	}
}
