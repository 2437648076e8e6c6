// Command sluice-cni is Sluice's CNI plugin; see package cni.
package main

import (
	"runtime"

	bv "github.com/containernetworking/plugins/pkg/utils/buildversion"

	"github.com/sluicenet/sluice/cni"
)

func init() {
	// Namespace switches (setns) apply to one OS thread: keep main on the
	// thread group leader for the whole run.
	runtime.LockOSThread()
}

func main() {
	cni.Main(bv.BuildString(cni.PluginName))
}
