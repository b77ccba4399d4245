package kube

import (
	"fmt"
	"os"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// The paths client-go's in-cluster configuration reads.
const (
	tokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"
)

// InCluster reports whether this process runs in a pod with a service account
// (the in-cluster configuration would work): the `--kubernetes=auto` test.
func InCluster() bool {
	if os.Getenv("KUBERNETES_SERVICE_HOST") == "" || os.Getenv("KUBERNETES_SERVICE_PORT") == "" {
		return false
	}
	_, err := os.Stat(tokenFile)
	return err == nil
}

// NewClient returns a clientset from the kubeconfig file, or from the
// in-cluster configuration when kubeconfig is empty and InCluster holds; else
// from the usual KUBECONFIG / ~/.kube/config lookup, for runs outside a pod.
func NewClient(kubeconfig string) (kubernetes.Interface, error) {
	var cfg *rest.Config
	var err error
	switch {
	case kubeconfig != "":
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	case InCluster():
		cfg, err = rest.InClusterConfig()
	default:
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		cfg, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client configuration: %w", err)
	}
	cfg = rest.CopyConfig(cfg)
	// Protobuf decodes Nodes with a fraction of JSON's garbage, which is
	// what bounds peak memory while thousands of Nodes are listed.
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	cfg.UserAgent = "go-pmtud"
	// One list and one watch: client-go's default limits are plenty, and a
	// low rate keeps thousands of daemons gentle on the API server.
	cfg.QPS, cfg.Burst = 5, 10
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return c, nil
}
