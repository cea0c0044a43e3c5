// Package interop tests ampsbroker against real clients and intermediaries:
// the official AMPS JavaScript client under Node (driver.js, pinned in
// package.json), the same client in headless Chromium, and nginx as a
// reverse proxy for both WebSocket and HTTP-preflight TCP connections.
//
// The package has no API; everything is in its tests. They need node, nginx
// and chromium on PATH and the npm packages installed in this folder:
// scripts/test.sh installs all of them and runs the tests. A missing tool is
// a test failure, never a skip.
package interop
