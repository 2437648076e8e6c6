package ui

import (
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/sluicenet/sluice/agent/api"
)

// Node kinds of the service map.
const (
	KindWorkload = "workload" // pods of one workload (app label or the pod name without its ReplicaSet suffix)
	KindService  = "service"  // a Service the flows went through (their original destination)
	KindReserved = "reserved" // host, world, remote-node, kube-apiserver, …: their own nodes
	KindIdentity = "identity" // an identity without pod, namespace or reserved label
)

// Verdict colours of the edges, as the page draws them.
var verdictColors = map[string]string{
	"FORWARDED": "#2e9e44",
	"AUDIT":     "#e69500",
	"DROPPED":   "#d33131",
}

// VerdictColor is the colour of an edge whose worst verdict is v.
func VerdictColor(v string) string {
	if c, ok := verdictColors[v]; ok {
		return c
	}
	return "#888888"
}

// verdictRank orders verdicts from benign to worst: an edge takes the
// colour of the worst verdict it saw.
func verdictRank(v string) int {
	switch v {
	case "FORWARDED":
		return 1
	case "AUDIT":
		return 2
	case "DROPPED":
		return 3
	}
	return 0
}

// Node is a vertex of the service map.
type Node struct {
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	Label     string `json:"label"`
	Namespace string `json:"namespace,omitempty"` // empty for reserved and identity nodes
	// Pods are the pods of a workload node seen in the flows (namespace/name).
	Pods  []string `json:"pods,omitempty"`
	Flows int      `json:"flows"` // flows from or to the node
}

// Edge is "who talks to whom": every flow from Source to Target, counted
// per verdict. Coloured by the worst verdict it saw.
type Edge struct {
	Source    string `json:"source"`
	Target    string `json:"target"`
	Verdict   string `json:"verdict"` // the worst: DROPPED, AUDIT, FORWARDED
	Color     string `json:"color"`
	Forwarded int    `json:"forwarded"`
	Dropped   int    `json:"dropped"`
	Audit     int    `json:"audit"`
	Flows     int    `json:"flows"`
	// Ports are the destination ports seen ("80/TCP"), sorted.
	Ports []string `json:"ports"`
}

// Graph is the service map: nodes grouped by namespace and their edges.
type Graph struct {
	Nodes      []Node   `json:"nodes"`
	Edges      []Edge   `json:"edges"`
	Namespaces []string `json:"namespaces"`
	Flows      int      `json:"flows"` // flows counted
}

// Build aggregates flows into the service map. services maps a frontend
// (ip:port, as a flow's origDestination names it) to the Service's
// "namespace/name": a flow sent to a service address becomes two edges,
// source → service and service → backend. local holds the pods of this
// node ("namespace/name"): a connection between two of them is seen twice,
// leaving the client and entering the server, and counts once, by the
// server's verdict (a forwarded egress flow to a local pod is skipped).
func Build(flows []api.Flow, services map[string]string, local map[string]bool) Graph {
	b := builder{nodes: map[string]*Node{}, edges: map[[2]string]*edgeAcc{}}
	skipped := 0
	for i := range flows {
		f := &flows[i]
		if f.Direction == "egress" && f.Verdict == "FORWARDED" && f.DstPod != "" && local[f.DstPod] {
			skipped++
			continue
		}
		src := b.node(peerNode(f.SrcPod, f.SrcLabels, f.SrcIdentity))
		dst := b.node(peerNode(f.DstPod, f.DstLabels, f.DstIdentity))
		port := strconv.Itoa(int(f.DstPort)) + "/" + f.Protocol
		if f.DstPort == 0 {
			port = f.Protocol
		}
		if svc, ok := services[f.OrigDest]; ok && f.OrigDest != "" {
			sn := b.node(serviceNode(svc))
			b.edge(src, sn, f.Verdict, port)
			b.edge(sn, dst, f.Verdict, port)
		} else {
			b.edge(src, dst, f.Verdict, port)
		}
	}
	return b.graph(len(flows) - skipped)
}

type edgeAcc struct {
	Edge
	ports map[string]bool
}

type builder struct {
	nodes map[string]*Node
	edges map[[2]string]*edgeAcc
}

// node adds n (once, merging pods) and returns its ID.
func (b *builder) node(n Node) string {
	have, ok := b.nodes[n.ID]
	if !ok {
		have = &n
		b.nodes[n.ID] = have
	} else if len(n.Pods) == 1 && !contains(have.Pods, n.Pods[0]) {
		have.Pods = append(have.Pods, n.Pods[0])
	}
	return n.ID
}

func (b *builder) edge(src, dst, verdict, port string) {
	b.nodes[src].Flows++
	if dst != src {
		b.nodes[dst].Flows++
	}
	e, ok := b.edges[[2]string{src, dst}]
	if !ok {
		e = &edgeAcc{Edge: Edge{Source: src, Target: dst}, ports: map[string]bool{}}
		b.edges[[2]string{src, dst}] = e
	}
	e.Flows++
	switch verdict {
	case "FORWARDED":
		e.Forwarded++
	case "DROPPED":
		e.Dropped++
	case "AUDIT":
		e.Audit++
	}
	if verdictRank(verdict) > verdictRank(e.Verdict) {
		e.Verdict = verdict
	}
	e.ports[port] = true
}

func (b *builder) graph(flows int) Graph {
	g := Graph{Nodes: []Node{}, Edges: []Edge{}, Namespaces: []string{}, Flows: flows}
	nss := map[string]bool{}
	for _, n := range b.nodes {
		sort.Strings(n.Pods)
		g.Nodes = append(g.Nodes, *n)
		if n.Namespace != "" && !nss[n.Namespace] {
			nss[n.Namespace] = true
			g.Namespaces = append(g.Namespaces, n.Namespace)
		}
	}
	sort.Strings(g.Namespaces)
	sort.Slice(g.Nodes, func(i, j int) bool { return g.Nodes[i].ID < g.Nodes[j].ID })
	for _, e := range b.edges {
		for p := range e.ports {
			e.Ports = append(e.Ports, p)
		}
		sort.Strings(e.Ports)
		e.Color = VerdictColor(e.Verdict)
		g.Edges = append(g.Edges, e.Edge)
	}
	sort.Slice(g.Edges, func(i, j int) bool {
		a, b := g.Edges[i], g.Edges[j]
		return a.Source < b.Source || a.Source == b.Source && a.Target < b.Target
	})
	return g
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Label keys naming a workload, most specific first (Hubble UI groups by
// the same app labels).
var workloadLabels = []string{"app.kubernetes.io/name", "app", "k8s-app", "name"}

const podNamespaceLabel = "io.kubernetes.pod.namespace"

// replicaSetSuffix is what a Deployment's ReplicaSet adds to its pods'
// names: -<pod-template-hash>-<5 random characters>.
var replicaSetSuffix = regexp.MustCompile(`-[a-z0-9]{6,10}-[a-z0-9]{5}$`)

// peerNode is the node of one side of a flow: the workload of its pod, a
// reserved entity (host, world, …), the workload its labels name (a pod
// of another node), or the bare identity.
func peerNode(pod string, labels []string, id uint32) Node {
	kv := labelMap(labels)
	if pod != "" {
		ns, name, _ := strings.Cut(pod, "/")
		w := workloadName(name, kv)
		return Node{ID: ns + "/" + w, Kind: KindWorkload, Label: w, Namespace: ns, Pods: []string{pod}}
	}
	for _, l := range labels {
		if src, key, ok := strings.Cut(l, ":"); ok && src == "reserved" {
			key, _, _ = strings.Cut(key, "=")
			return reservedNode(key)
		}
	}
	if ns := kv[podNamespaceLabel]; ns != "" {
		if w := workloadName("", kv); w != "" {
			return Node{ID: ns + "/" + w, Kind: KindWorkload, Label: w, Namespace: ns}
		}
	}
	for _, l := range labels {
		if strings.HasPrefix(l, "cidr:") {
			return reservedNode("world")
		}
	}
	switch id {
	case 1:
		return reservedNode("host")
	case 2, 9, 10:
		return reservedNode("world")
	case 0:
		return reservedNode("unknown")
	}
	s := "identity:" + strconv.FormatUint(uint64(id), 10)
	return Node{ID: s, Kind: KindIdentity, Label: s}
}

// reservedNode is a reserved entity's node; world-ipv4 and world-ipv6
// are world.
func reservedNode(name string) Node {
	if strings.HasPrefix(name, "world") {
		name = "world"
	}
	return Node{ID: name, Kind: KindReserved, Label: name}
}

func serviceNode(svc string) Node {
	ns, name, _ := strings.Cut(svc, "/")
	return Node{ID: "service:" + svc, Kind: KindService, Label: name, Namespace: ns}
}

// workloadName is the value of the first workload label, else the pod's
// name without a ReplicaSet suffix.
func workloadName(pod string, kv map[string]string) string {
	for _, k := range workloadLabels {
		if v := kv[k]; v != "" {
			return v
		}
	}
	return replicaSetSuffix.ReplaceAllString(pod, "")
}

// labelMap turns "source:key=value" labels into key → value.
func labelMap(labels []string) map[string]string {
	m := make(map[string]string, len(labels))
	for _, l := range labels {
		if src, rest, ok := strings.Cut(l, ":"); ok && !strings.Contains(src, "=") {
			l = rest
		}
		k, v, _ := strings.Cut(l, "=")
		m[k] = v
	}
	return m
}

// ServiceFrontends maps every frontend of services (ip:port) to its
// Service's "namespace/name" (the port name dropped).
func ServiceFrontends(services []api.Service) map[string]string {
	m := make(map[string]string, len(services))
	for _, s := range services {
		name := s.Name
		if i := strings.LastIndexByte(name, ':'); i > strings.IndexByte(name, '/') {
			name = name[:i]
		}
		m[s.Frontend] = name
	}
	return m
}
