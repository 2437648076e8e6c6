package manifests

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"

	"github.com/sluicenet/sluice/test/bench/services"
)

// BenchmarkLoad measures a cold load (parse and merge) of a directory of
// 1000 files, each a Service and its EndpointSlice, and a rescan where
// nothing changed.
func BenchmarkLoad(b *testing.B) {
	dir := b.TempDir()
	for i := range 1000 {
		write(b, dir, fmt.Sprintf("s%04d.yaml", i), svcYAML(fmt.Sprintf("s%d", i), fmt.Sprintf("10.96.%d.%d", i>>8, i&255), 80)+`---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: s`+fmt.Sprint(i)+`-1, labels: {kubernetes.io/service-name: s`+fmt.Sprint(i)+`}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.0.1.5]}, {addresses: [10.0.1.6]}, {addresses: [10.0.1.7]}]
`)
	}
	log, _ := test.NewNullLogger()
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			w := New(dir, log)
			w.scan()
			if s := w.publish(); len(s.Services) != 1000 || len(s.EndpointSlices) != 1000 {
				b.Fatalf("loaded %d services, %d slices", len(s.Services), len(s.EndpointSlices))
			}
		}
	})
	b.Run("unchanged-rescan", func(b *testing.B) {
		w := New(dir, log)
		w.scan()
		for b.Loop() {
			if w.scan() {
				b.Fatal("change")
			}
		}
	})
}

// BenchmarkLoad10k measures a cold load of the TCP_CRR benchmark's
// standalone manifests: one file of 10 000 Services, each with an
// EndpointSlice of two backends.
func BenchmarkLoad10k(b *testing.B) {
	dir, _ := crrManifests(b)
	log, _ := test.NewNullLogger()
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			w := New(dir, log)
			w.scan()
			if s := w.publish(); len(s.Services) != 10000 || len(s.EndpointSlices) != 10000 {
				b.Fatalf("loaded %d services, %d slices", len(s.Services), len(s.EndpointSlices))
			}
		}
	})
	// The agent started on an empty directory, then the file arrived.
	b.Run("after-empty", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			empty := b.TempDir()
			w := New(empty, log)
			w.scan()
			w.publish()
			data, err := os.ReadFile(filepath.Join(dir, "services.yaml"))
			if err != nil {
				b.Fatal(err)
			}
			write(b, empty, "services.yaml", string(data))
			b.StartTimer()
			w.scan()
			if s := w.publish(); len(s.Services) != 10000 || len(s.Changes.Services) != 10000 {
				b.Fatalf("loaded %d services", len(s.Services))
			}
		}
	})
}

var benchBackends = []netip.AddrPort{netip.MustParseAddrPort("10.244.1.2:8080"), netip.MustParseAddrPort("10.244.1.3:8080")}

// crrManifests writes the TCP_CRR benchmark's 10 000 Services into
// services.yaml of a new directory.
func crrManifests(b *testing.B) (string, []services.Service) {
	set, err := services.Set(10000, benchBackends, benchBackends)
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if err := services.WriteManifests(&buf, set); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	write(b, dir, "services.yaml", buf.String())
	return dir, set
}

// BenchmarkChange10k measures a change with 10 000 Services loaded: one
// small file rewritten, then the rescan and the snapshot for the callback.
func BenchmarkChange10k(b *testing.B) {
	dir, set := crrManifests(b)
	old := time.Now().Add(-time.Hour) // outside the racy window: not re-read
	if err := os.Chtimes(filepath.Join(dir, "services.yaml"), old, old); err != nil {
		b.Fatal(err)
	}
	log, _ := test.NewNullLogger()
	w := New(dir, log)
	w.scan()
	w.publish()
	i := 0
	for b.Loop() {
		i++
		var one bytes.Buffer
		x := services.Extra(set, "extra", []netip.AddrPort{netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 244, 9, byte(i)}), 8080)})
		if err := services.WriteManifests(&one, []services.Service{x}); err != nil {
			b.Fatal(err)
		}
		write(b, dir, "extra.yaml", one.String())
		if !w.scan() {
			b.Fatal("no change")
		}
		if s := w.publish(); len(s.Services) != 10001 || len(s.Changes.Services) != 1 {
			b.Fatalf("%d services, changes %v", len(s.Services), s.Changes)
		}
	}
}
