module github.com/ampsbroker/ampsbroker

go 1.26.8

require (
	github.com/coder/websocket v1.8.15
	github.com/google/go-cmp v0.7.0
	github.com/nats-io/nuid v1.0.1
)
