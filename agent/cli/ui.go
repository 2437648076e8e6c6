package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicenet/sluice/agent/api"
	"github.com/sluicenet/sluice/agent/ui"
)

func uiCommand(o *options) *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "ui",
		Short: "Serve the service map: who talks to whom from the agent's flows, on a local web page (like Hubble UI)",
		Long: "Serve the service map on --addr (loopback by default): a live graph of the agent's flows (workloads\n" +
			"and services grouped by namespace, world and host as their own nodes, edges coloured by verdict with\n" +
			"counts), the flows with the `sluice observe` filters, and the process events of a selected pod.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := loopbackAddr(addr); err != nil {
				return err
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", addr, err)
			}
			ctx, cancel := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer cancel()
			s := ui.NewServer(o.client())
			// The page's lines go without EventLine's leading emoji: a
			// browser may have no font for them.
			s.EventLine = func(ev *api.ProcessEvent) string {
				_, line, _ := strings.Cut(EventLine(ev), " ")
				return line
			}
			go s.Run(ctx)
			srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
			go func() {
				<-ctx.Done()
				sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
				defer c()
				_ = srv.Shutdown(sctx)
			}()
			fmt.Fprintf(cmd.OutOrStdout(), "sluice ui: serving the service map on http://%s/\n", ln.Addr())
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "addr", ui.DefaultAddr,
		"loopback address to serve on (host:port; port 0 picks a free one); from elsewhere, forward a port to it (ssh -L, kubectl port-forward)")
	return cmd
}

// loopbackAddr refuses an address that is not on loopback: the page shows
// this node's flows and processes to whoever reaches it.
func loopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--addr %q: sluice ui serves on a loopback address only (127.0.0.1, ::1 or localhost); forward a port to reach it from elsewhere", addr)
	}
	return nil
}
