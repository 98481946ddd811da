package main

import (
	"testing"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func clusterAny(t *testing.T, name string) *anypb.Any {
	t.Helper()
	a, err := anypb.New(&cluster.Cluster{
		Name: name, ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// What parse reads of a response is what protobuf's own decoding finds, fields in any order.
func TestParseReadsWhatProtobufDecodes(t *testing.T) {
	sotw, _ := proto.Marshal(&discovery.DiscoveryResponse{
		VersionInfo: "v7", TypeUrl: typeCluster, Nonce: "3", Canary: true,
		Resources:    []*anypb.Any{clusterAny(t, "a"), clusterAny(t, "b")},
		ControlPlane: &core.ControlPlane{Identifier: "plait"},
	})
	r := &response{}
	if err := r.parse(sotw); err != nil {
		t.Fatal(err)
	}
	if r.version != "v7" || r.typeURL != typeCluster || r.nonce != "3" || len(r.resources) != 2 {
		t.Fatalf("SotW: %+v", r)
	}
	if got := r.resources[1].msg.(*cluster.Cluster).GetName(); got != "b" {
		t.Fatalf("SotW resource 1 is %q", got)
	}

	// the type URL last: resources are decoded once it is known
	delta, _ := proto.Marshal(&discovery.DeltaDiscoveryResponse{
		Nonce: "9", RemovedResources: []string{"gone", "gone2"},
		Resources: []*discovery.Resource{
			{Name: "a", Version: "va", Resource: clusterAny(t, "a"), Aliases: []string{"x"}},
		},
	})
	tail, _ := proto.Marshal(&discovery.DeltaDiscoveryResponse{TypeUrl: typeCluster})
	r = &response{delta: true}
	if err := r.parse(append(delta, tail...)); err != nil {
		t.Fatal(err)
	}
	if r.nonce != "9" || r.typeURL != typeCluster || len(r.removed) != 2 || r.removed[1] != "gone2" {
		t.Fatalf("delta: %+v", r)
	}
	res := r.resources[0]
	if res.name != "a" || res.version != "va" || res.msg.(*cluster.Cluster).GetName() != "a" {
		t.Fatalf("delta resource: %+v", res)
	}
	if err := (&response{}).parse([]byte{0x12, 0x05, 0x01}); err == nil {
		t.Fatal("a truncated response parsed")
	}
}
