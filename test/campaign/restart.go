package main

import (
	"flag"

	"github.com/sluicenet/sluice/test/harness"
)

type restartOpts struct{}

func restartFlags(fs *flag.FlagSet) *restartOpts { return &restartOpts{} }
func (o *restartOpts) finish(quick bool)        {}
func restart(r *harness.Runner, o *restartOpts) bool { return false }
