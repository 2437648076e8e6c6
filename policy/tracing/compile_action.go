package tracing

import (
	"fmt"
	"time"
)

// hook is the kind of hook a selector belongs to (the actions differ).
type hook int

const (
	hookExec hook = iota
	hookSyscall
	hookConnect
)

// connectArgError is Override's only error in spec.connects (-EPERM).
const connectArgError = -1

// action is a compiled matchActions entry.
type action struct {
	Action    Action
	Signal    int
	RateLimit time.Duration
}

// actions compiles a selector's matchActions: at most one entry, none is
// Post.
func (c *compiler) actions(path string, as []ActionSelector, h hook) action {
	if len(as) > 1 {
		c.addf(path+".matchActions", "one action per selector (Sigkill and Signal post an event too)")
	}
	if len(as) == 0 {
		return action{Action: ActionPost}
	}
	return c.action(path+".matchActions[0]", as[0], h)
}

func (c *compiler) action(path string, a ActionSelector, h hook) action {
	out := action{Action: Action(a.Action)}
	switch out.Action {
	case ActionPost, ActionNoPost:
	case ActionSigkill:
		out.Signal = 9
	case ActionSignal:
		if a.ArgSig < 1 || a.ArgSig > MaxSignal {
			c.addf(path+".argSig", "Signal needs a signal number 1..%d, got %d", MaxSignal, a.ArgSig)
		}
		out.Signal = int(a.ArgSig)
	case ActionOverride:
		switch {
		case h != hookConnect:
			c.kernel(path+".action", "cannot override a return value without kprobes/fmod_ret")
		case a.ArgError != 0 && a.ArgError != connectArgError:
			c.addf(path+".argError", "%d: the cgroup connect hooks can return EPERM only (argError -1, or omit it)", a.ArgError)
		}
	case "NotifyEnforcer", "CleanupEnforcerNotification":
		c.kernel(path+".action", a.Action+" needs an enforcer (kprobes or fmod_ret), which this kernel cannot load")
	case "FollowFD", "UnfollowFD", "CopyFD", "GetUrl", "DnsLookup", "TrackSock", "UntrackSock", "Set":
		c.add(path+".action", fmt.Errorf("%s: %w", a.Action, ErrNotYet))
	default:
		want := "Post, NoPost, Sigkill or Signal"
		if h == hookConnect {
			want = "Override, " + want
		}
		c.addf(path+".action", "unknown action %q (want %s)", a.Action, want)
	}
	if a.ArgSig != 0 && out.Action != ActionSignal {
		c.addf(path+".argSig", "only for Signal")
	}
	if a.RateLimit != "" {
		if out.Action != ActionPost {
			c.addf(path+".rateLimit", "only for Post")
		} else if d, err := parseRateLimit(a.RateLimit); err != nil {
			c.add(path+".rateLimit", err)
		} else {
			out.RateLimit = d
		}
	}
	switch a.RateLimitScope {
	case "", "thread", "process":
	case "global":
		c.add(path+".rateLimitScope", fmt.Errorf("global: %w", ErrNotYet))
	default:
		c.addf(path+".rateLimitScope", "%q is not thread, process or global", a.RateLimitScope)
	}
	c.notYet(path+".", []field{
		{"argError", a.ArgError != 0 && out.Action != ActionOverride}, {"argFd", a.ArgFd != 0}, {"argName", a.ArgName != 0},
		{"argUrl", a.ArgURL != ""}, {"argFqdn", a.ArgFqdn != ""}, {"argSock", a.ArgSock != 0},
		{"kernelStackTrace", a.KernelStackTrace}, {"userStackTrace", a.UserStackTrace}, {"imaHash", a.ImaHash},
	})
	return out
}
