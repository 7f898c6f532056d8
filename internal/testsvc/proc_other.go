//go:build !linux

package testsvc

import "syscall"

// childAttr uses the defaults: only Linux can tie a child's life to ours.
func childAttr() *syscall.SysProcAttr { return nil }
