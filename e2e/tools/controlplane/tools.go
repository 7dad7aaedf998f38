//go:build tools

// Package tools records the commands this module builds so `go mod tidy`
// keeps their dependencies: etcd and the Kubernetes binaries, in one module
// graph so the packages they share (gRPC, protobuf, the etcd client,
// OpenTelemetry, Prometheus' client) are of one version and compile once.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
