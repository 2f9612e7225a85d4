package main

import (
	"os/exec"
	"syscall"
)

// killWithParent has the kernel kill the server if chatload dies first
// (interrupted, or killed at a timeout), so no server outlives a run.
func killWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
