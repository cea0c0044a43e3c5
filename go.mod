module github.com/ampsbroker/ampsbroker

go 1.26.8

require (
	github.com/coder/websocket v1.8.15 // indirect
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
)
