// Command crimini is the part of crictl the local node needs, over CRI v1 (cri-tools is not on the module proxy here).
//
//	crimini pods    list pod sandboxes with state and IP
//	crimini ps      list containers
//	crimini images  list images
//	crimini rmp     stop and remove every pod sandbox (CNI DEL happens in StopPodSandbox)
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	rt "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "crimini:", err)
		os.Exit(1)
	}
}

func run() error {
	ep := os.Getenv("CRI_ENDPOINT")
	if ep == "" {
		ep = "unix:///var/cache/sluice-k8s/run/containerd.sock"
	}
	conn, err := grpc.NewClient(ep, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("dial %s: %w", ep, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, im := rt.NewRuntimeServiceClient(conn), rt.NewImageServiceClient(conn)
	verb := "pods"
	if len(os.Args) > 1 {
		verb = os.Args[1]
	}
	switch verb {
	case "pods", "rmp":
		l, err := r.ListPodSandbox(ctx, &rt.ListPodSandboxRequest{})
		if err != nil {
			return fmt.Errorf("list sandboxes: %w", err)
		}
		for _, p := range l.Items {
			name := p.Metadata.Namespace + "/" + p.Metadata.Name
			if verb == "rmp" {
				_, err1 := r.StopPodSandbox(ctx, &rt.StopPodSandboxRequest{PodSandboxId: p.Id})
				_, err2 := r.RemovePodSandbox(ctx, &rt.RemovePodSandboxRequest{PodSandboxId: p.Id})
				fmt.Println("removed", p.Id[:13], name, err1, err2)
				continue
			}
			ip := ""
			if s, err := r.PodSandboxStatus(ctx, &rt.PodSandboxStatusRequest{PodSandboxId: p.Id}); err == nil && s.Status.Network != nil {
				ip = s.Status.Network.Ip
			}
			fmt.Println(p.Id[:13], p.State, name, ip)
		}
	case "ps":
		l, err := r.ListContainers(ctx, &rt.ListContainersRequest{})
		if err != nil {
			return fmt.Errorf("list containers: %w", err)
		}
		for _, c := range l.Containers {
			fmt.Println(c.Id[:13], c.State, c.Metadata.Name, c.Image.Image, c.PodSandboxId[:13])
		}
	case "images":
		l, err := im.ListImages(ctx, &rt.ListImagesRequest{})
		if err != nil {
			return fmt.Errorf("list images: %w", err)
		}
		for _, i := range l.Images {
			fmt.Println(i.Id[:19], i.RepoTags, i.Size_)
		}
	default:
		return fmt.Errorf("unknown verb %q", verb)
	}
	return nil
}
