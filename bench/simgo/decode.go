package main

import (
	"slices"
	"sync"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
)

const (
	typeCluster  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	typeEndpoint = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	typeListener = "type.googleapis.com/envoy.config.listener.v3.Listener"
	typeRoute    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	typeHCM      = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	memoLimit    = 200_000
)

// decoded memoizes decoding by (type, bytes), as bench.simclient._decode does: the
// resources every proxy shares reach each of them as the same bytes, so each distinct
// resource is decoded once per process (bounded: cleared past memoLimit entries).
var decoded = struct {
	sync.Mutex
	byType map[string]map[string]proto.Message
	n      int
}{byType: map[string]map[string]proto.Message{}}

func newMessage(typeURL string) proto.Message {
	switch typeURL {
	case typeCluster:
		return &cluster.Cluster{}
	case typeEndpoint:
		return &endpoint.ClusterLoadAssignment{}
	case typeListener:
		return &listener.Listener{}
	case typeRoute:
		return &route.RouteConfiguration{}
	}
	return nil
}

// decode is the message of body (nil for a type it does not know); it keeps nothing of
// body itself.
func decode(typeURL string, body []byte) (proto.Message, error) {
	decoded.Lock()
	found := decoded.byType[typeURL][string(body)]
	decoded.Unlock()
	if found != nil {
		return found, nil
	}
	msg := newMessage(typeURL)
	if msg == nil {
		return nil, nil
	}
	key := string(body) // body may be gRPC's pooled buffer: keep copies only
	if err := proto.Unmarshal([]byte(key), msg); err != nil {
		return nil, err
	}
	decoded.Lock()
	defer decoded.Unlock()
	if decoded.n >= memoLimit {
		decoded.byType, decoded.n = map[string]map[string]proto.Message{}, 0
	}
	m := decoded.byType[typeURL]
	if m == nil {
		m = map[string]proto.Message{}
		decoded.byType[typeURL] = m
	}
	m[key] = msg
	decoded.n++
	return msg, nil
}

// edsNames are the EDS service names of the EDS clusters among msgs, sorted.
func edsNames(msgs []proto.Message) []string {
	var names []string
	for _, m := range msgs {
		c, ok := m.(*cluster.Cluster)
		if !ok || c.GetType() != cluster.Cluster_EDS {
			continue
		}
		name := c.GetEdsClusterConfig().GetServiceName()
		if name == "" {
			name = c.GetName()
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// rdsNames are the route configurations the listeners' HTTP connection managers name
// over RDS, sorted and distinct.
func rdsNames(msgs []proto.Message) []string {
	seen := map[string]bool{}
	for _, m := range msgs {
		l, ok := m.(*listener.Listener)
		if !ok {
			continue
		}
		for _, chain := range l.GetFilterChains() {
			for _, f := range chain.GetFilters() {
				tc := f.GetTypedConfig()
				if tc.GetTypeUrl() != typeHCM {
					continue
				}
				var h hcm.HttpConnectionManager
				if err := proto.Unmarshal(tc.GetValue(), &h); err != nil {
					continue
				}
				if rds := h.GetRds(); rds != nil {
					seen[rds.GetRouteConfigName()] = true
				}
			}
		}
	}
	names := make([]string, 0, len(seen))
	for name := range seen {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// follows says which type a type's resources subscribe to, and how to name them.
var follows = map[string]struct {
	sub   string
	names func([]proto.Message) []string
}{
	typeCluster:  {typeEndpoint, edsNames},
	typeListener: {typeRoute, rdsNames},
}
