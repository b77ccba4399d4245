package kube

import (
	"fmt"

	"github.com/go-pmtud/go-pmtud/internal/kubeapi"
)

// InCluster reports whether this process runs in a pod with a service account
// (the in-cluster configuration would work): the `--kubernetes=auto` test.
func InCluster() bool { return kubeapi.InCluster() }

// NewClient returns an API client from the kubeconfig file, or from the
// in-cluster configuration when kubeconfig is empty and InCluster holds; else
// from the usual KUBECONFIG / ~/.kube/config lookup, for runs outside a pod.
// The Node watch and the Service watch share it (and its connection).
func NewClient(kubeconfig string) (*kubeapi.Client, error) {
	cfg, err := kubeapi.Load(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client configuration: %w", err)
	}
	return kubeapi.New(cfg)
}
