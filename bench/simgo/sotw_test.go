package main

import (
	"bytes"
	"fmt"
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
)

// A request sent as bytes is byte for byte the DiscoveryRequest proto.Marshal writes.
func TestRequestIsTheMarshalledRequest(t *testing.T) {
	names := make([]string, 300)
	for i := range names {
		names[i] = fmt.Sprintf("outbound|80||svc-%d.default.svc.cluster.local", i)
	}
	p := newSotwProxy(&core.Node{Id: "sidecar~a-0.default", Cluster: "a"})
	first := p.request(typeCluster, "").Materialize()
	want, _ := proto.Marshal(&discovery.DiscoveryRequest{TypeUrl: typeCluster, Node: p.node})
	if !bytes.Equal(first, want) {
		t.Fatalf("first request: %x, want %x", first, want)
	}
	p.names[typeEndpoint], p.wire[typeEndpoint] = names, namesWire(names)
	p.version[typeEndpoint] = "v-41"
	ack := p.request(typeEndpoint, "17").Materialize()
	want, _ = proto.Marshal(&discovery.DiscoveryRequest{
		VersionInfo: "v-41", ResourceNames: names, TypeUrl: typeEndpoint, ResponseNonce: "17",
	})
	if !bytes.Equal(ack, want) {
		t.Fatalf("ACK differs from proto.Marshal's (%d and %d bytes)", len(ack), len(want))
	}
	if &namesWire(names)[0] != &namesWire(append([]string(nil), names...))[0] {
		t.Fatal("the same list of names was encoded twice")
	}
}
