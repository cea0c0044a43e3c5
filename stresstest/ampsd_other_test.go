//go:build !linux

package stresstest

import "os/exec"

// dieWithTest does nothing where the kernel cannot tie a child's life to
// its parent's; the test's cleanup still kills the child.
func dieWithTest(*exec.Cmd) {}
