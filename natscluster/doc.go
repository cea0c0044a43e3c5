// Package natscluster lets several ampsbroker nodes act as one broker over
// NATS, with JetStream holding what must be durable and ordered.
package natscluster
