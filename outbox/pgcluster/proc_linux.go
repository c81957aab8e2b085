package pgcluster

import "syscall"

// setDeathSignal asks the kernel to send the postmaster SIGQUIT (immediate
// shutdown) if the thread that started it dies, so a killed test binary
// leaves no server behind.
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGQUIT }
