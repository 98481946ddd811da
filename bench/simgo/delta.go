package main

import (
	"context"
	"maps"
	"slices"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

type held struct {
	version string
	msg     proto.Message
}

// deltaProxy is one simulated Envoy on a delta ADS stream, as bench.simdelta.DeltaSimProxy:
// it keeps what it holds by name, subscribes EDS and RDS by difference, ACKs by nonce,
// asks for LDS once clusters are warm, and after a reconnect announces what it holds
// (initial_resource_versions, and every name it is subscribed to).
type deltaProxy struct {
	node       *core.Node
	held       map[string]map[string]held // type -> name -> what is held
	subscribed map[string]map[string]bool // EDS, RDS -> names

	nodeSent     bool
	announced    map[string]bool
	ldsRequested bool
	edsSeen      bool
}

func newDeltaProxy(n *core.Node) *deltaProxy {
	p := &deltaProxy{
		node: n,
		held: map[string]map[string]held{
			typeCluster: {}, typeEndpoint: {}, typeListener: {}, typeRoute: {},
		},
		subscribed: map[string]map[string]bool{typeEndpoint: {}, typeRoute: {}},
	}
	p.reset()
	return p
}

// reset starts a new stream: what is held stays (it is announced), the stream state goes.
func (p *deltaProxy) reset() {
	p.nodeSent = false
	p.announced = map[string]bool{}
	p.ldsRequested = false
	p.edsSeen = false
}

func sortedKeys(set map[string]bool) []string {
	return slices.Sorted(maps.Keys(set))
}

func (p *deltaProxy) request(typeURL string, subscribe, unsubscribe []string) *discovery.DeltaDiscoveryRequest {
	req := &discovery.DeltaDiscoveryRequest{
		TypeUrl:                  typeURL,
		ResourceNamesSubscribe:   subscribe,
		ResourceNamesUnsubscribe: unsubscribe,
	}
	if !p.announced[typeURL] { // the stream's first request of the type
		p.announced[typeURL] = true
		if h := p.held[typeURL]; len(h) > 0 {
			req.InitialResourceVersions = make(map[string]string, len(h))
			for name, r := range h {
				req.InitialResourceVersions[name] = r.version
			}
		}
		if subs, ok := p.subscribed[typeURL]; ok {
			all := maps.Clone(subs)
			for _, name := range subscribe {
				all[name] = true
			}
			req.ResourceNamesSubscribe = sortedKeys(all)
		}
	}
	if !p.nodeSent {
		req.Node = p.node
		p.nodeSent = true
	}
	return req
}

func (p *deltaProxy) run(ctx context.Context, conn *grpc.ClientConn) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ads := discovery.NewAggregatedDiscoveryServiceClient(conn)
	call, err := ads.DeltaAggregatedResources(ctx, grpc.ForceCodecV2(wireCodec{}))
	if err != nil {
		return false, err
	}
	first := []*discovery.DeltaDiscoveryRequest{p.request(typeCluster, nil, nil)}
	if len(p.held[typeCluster]) > 0 { // a reconnect: clusters are warm, ask for the rest now
		first = append(first, p.listeners()...)
	}
	recv := func() (*response, error) {
		r := &response{delta: true}
		return r, call.RecvMsg(r)
	}
	return exchange(first, recv, call.Send, p.onResponse)
}

func (p *deltaProxy) onResponse(resp *response) ([]*discovery.DeltaDiscoveryRequest, error) {
	t := resp.typeURL
	h := p.held[t]
	if h == nil {
		h = map[string]held{}
		p.held[t] = h
	}
	for _, r := range resp.resources {
		h[r.name] = held{r.version, r.msg}
	}
	for _, name := range resp.removed {
		delete(h, name)
	}
	var out []*discovery.DeltaDiscoveryRequest
	if follow, ok := follows[t]; ok {
		msgs := make([]proto.Message, 0, len(h))
		for _, r := range h {
			msgs = append(msgs, r.msg)
		}
		names := map[string]bool{}
		for _, name := range follow.names(msgs) {
			names[name] = true
		}
		before := p.subscribed[follow.sub]
		if !maps.Equal(names, before) {
			p.subscribed[follow.sub] = names
			var added, gone []string
			for name := range names {
				if !before[name] {
					added = append(added, name)
				}
			}
			for name := range before {
				if !names[name] {
					gone = append(gone, name)
					delete(p.held[follow.sub], name)
				}
			}
			slices.Sort(added)
			slices.Sort(gone)
			if p.announced[follow.sub] {
				out = append(out, p.request(follow.sub, added, gone))
			} else {
				out = append(out, p.request(follow.sub, nil, nil))
			}
		}
	}
	p.edsSeen = p.edsSeen || t == typeEndpoint
	out = append(out, &discovery.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: resp.nonce})
	if (t == typeCluster || t == typeEndpoint) && (p.edsSeen || len(p.subscribed[typeEndpoint]) == 0) {
		out = append(out, p.listeners()...)
	}
	return out, nil
}

func (p *deltaProxy) listeners() []*discovery.DeltaDiscoveryRequest {
	if p.ldsRequested {
		return nil
	}
	p.ldsRequested = true
	out := []*discovery.DeltaDiscoveryRequest{p.request(typeListener, nil, nil)}
	if len(p.subscribed[typeRoute]) > 0 { // a reconnect: announce the routes held too
		out = append(out, p.request(typeRoute, nil, nil))
	}
	if len(p.subscribed[typeEndpoint]) > 0 && !p.announced[typeEndpoint] {
		out = append(out, p.request(typeEndpoint, nil, nil))
	}
	return out
}
