package main

import (
	"context"
	"slices"
	"strings"
	"sync"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// sotwProxy is one simulated Envoy on a State of the World ADS stream, as
// bench.simclient.SimProxy: a wildcard CDS request with its node; on CDS, EDS subscribed
// to the EDS clusters' service names (a new request when the set changed), then the ACK;
// LDS asked for once CDS and the first EDS response are in; LDS drives RDS the same way;
// every response ACKed with the full list of names of its type. Its requests are sent as
// wire (wireCodec, which also reads the responses): the names, ~48 KB in an EDS ACK at
// 1,000 services, are encoded once per list (namesWire), as building them costs Envoy's
// C++ next to nothing.
type sotwProxy struct {
	node         *core.Node
	names        map[string][]string
	wire         map[string][]byte // type -> its names as encoded
	nonce        map[string]string
	version      map[string]string
	ldsRequested bool
	nodeSent     bool
}

func newSotwProxy(n *core.Node) *sotwProxy {
	p := &sotwProxy{node: n}
	p.reset()
	return p
}

func (p *sotwProxy) reset() {
	p.names = map[string][]string{typeEndpoint: nil, typeRoute: nil}
	p.wire = map[string][]byte{}
	p.nonce = map[string]string{}
	p.version = map[string]string{}
	p.ldsRequested = false
	p.nodeSent = false
}

// request is a DiscoveryRequest as three pieces of wire: fields 1-2, the names (3, the
// list's shared encoding, not copied), then 4-5, the order proto.Marshal (and Envoy)
// write them in. gRPC copies the pieces once, into its frames; joining them here first
// cost each EDS ACK a ~48 KB allocation and copy (and the collector its garbage).
func (p *sotwProxy) request(typeURL, nonce string) mem.BufferSlice {
	head := &discovery.DiscoveryRequest{VersionInfo: p.version[typeURL]}
	if !p.nodeSent {
		head.Node = p.node
		p.nodeSent = true
	}
	wire, err := proto.Marshal(head)
	if err != nil {
		panic(err) // (a node from JSON always encodes)
	}
	tail, err := proto.Marshal(&discovery.DiscoveryRequest{TypeUrl: typeURL, ResponseNonce: nonce})
	if err != nil {
		panic(err)
	}
	out := mem.BufferSlice{mem.SliceBuffer(wire)}
	if names := p.wire[typeURL]; len(names) > 0 {
		out = append(out, mem.SliceBuffer(names))
	}
	return append(out, mem.SliceBuffer(tail))
}

func (p *sotwProxy) run(ctx context.Context, conn *grpc.ClientConn) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ads := discovery.NewAggregatedDiscoveryServiceClient(conn)
	call, err := ads.StreamAggregatedResources(ctx, grpc.ForceCodecV2(wireCodec{}))
	if err != nil {
		return false, err
	}
	recv := func() (*response, error) {
		r := &response{}
		return r, call.RecvMsg(r)
	}
	send := func(req mem.BufferSlice) error { return call.SendMsg(req) }
	return exchange([]mem.BufferSlice{p.request(typeCluster, "")}, recv, send, p.onResponse)
}

func (p *sotwProxy) onResponse(resp *response) ([]mem.BufferSlice, error) {
	t := resp.typeURL
	msgs := make([]proto.Message, len(resp.resources))
	for i, r := range resp.resources {
		msgs[i] = r.msg
	}
	var out []mem.BufferSlice
	if follow, ok := follows[t]; ok {
		names := follow.names(msgs)
		if !slices.Equal(names, p.names[follow.sub]) {
			p.names[follow.sub] = names
			p.wire[follow.sub] = namesWire(names)
			out = append(out, p.request(follow.sub, p.nonce[follow.sub]))
		}
	}
	p.nonce[t] = resp.nonce
	p.version[t] = resp.version
	out = append(out, p.request(t, resp.nonce)) // the ACK
	_, cds := p.nonce[typeCluster]
	_, eds := p.nonce[typeEndpoint]
	if cds && (eds || len(p.names[typeEndpoint]) == 0) && !p.ldsRequested {
		p.ldsRequested = true
		out = append(out, p.request(typeListener, ""))
	}
	return out, nil
}

// namesWire encodes resource_names (field 3) once per distinct list, shared by every
// proxy of the process that holds the same list.
var namesMemo = struct {
	sync.Mutex
	byList map[string][]byte
}{byList: map[string][]byte{}}

func namesWire(names []string) []byte {
	if len(names) == 0 {
		return nil
	}
	key := strings.Join(names, "\x00")
	namesMemo.Lock()
	defer namesMemo.Unlock()
	wire, ok := namesMemo.byList[key]
	if !ok {
		var err error
		wire, err = proto.Marshal(&discovery.DiscoveryRequest{ResourceNames: names})
		if err != nil {
			panic(err) // (names are valid UTF-8: they came from decoded resources)
		}
		if len(namesMemo.byList) > memoLimit {
			clear(namesMemo.byList)
		}
		namesMemo.byList[key] = wire
	}
	return wire
}
