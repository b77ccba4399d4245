package kube

import (
	"context"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// NodeClient lists and watches Nodes. NewClient returns one; the
// CoreV1().Nodes() of a client-go clientset is one too.
type NodeClient interface {
	List(ctx context.Context, opts metav1.ListOptions) (*corev1.NodeList, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// tokenFile is where client-go's in-cluster configuration reads the token.
const tokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// InCluster reports whether this process runs in a pod with a service account
// (the in-cluster configuration would work): the `--kubernetes=auto` test.
func InCluster() bool {
	if os.Getenv("KUBERNETES_SERVICE_HOST") == "" || os.Getenv("KUBERNETES_SERVICE_PORT") == "" {
		return false
	}
	_, err := os.Stat(tokenFile)
	return err == nil
}

// NewClient returns a Node client from the kubeconfig file, or from the
// in-cluster configuration when kubeconfig is empty and InCluster holds; else
// from the usual KUBECONFIG / ~/.kube/config lookup, for runs outside a pod.
func NewClient(kubeconfig string) (NodeClient, error) {
	cfg, err := RESTConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	return NewClientForConfig(cfg)
}

// RESTConfig resolves the API server configuration as NewClient does.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
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
	return cfg, nil
}

// NewClientForConfig returns a Node client for cfg.
//
// It is a REST client that knows only the core/v1 types, not client-go's
// clientset: the clientset registers every API group of Kubernetes at start,
// which costs the daemon more memory than 5,000 cached Nodes do.
func NewClientForConfig(cfg *rest.Config) (NodeClient, error) {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.APIPath = "/api"
	cfg.GroupVersion = &corev1.SchemeGroupVersion
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	// Protobuf decodes Nodes with a fraction of JSON's garbage, which is
	// what bounds peak memory while thousands of Nodes arrive.
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	if cfg.UserAgent == "" {
		cfg.UserAgent = "go-pmtud"
	}
	// One list and one watch at a time: a low rate keeps thousands of
	// daemons gentle on the API server.
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 5, 10
	}
	rc, err := rest.RESTClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return &nodeClient{rc: rc, params: runtime.NewParameterCodec(scheme)}, nil
}

type nodeClient struct {
	rc     *rest.RESTClient
	params runtime.ParameterCodec
}

func (c *nodeClient) List(ctx context.Context, opts metav1.ListOptions) (*corev1.NodeList, error) {
	var timeout time.Duration
	if opts.TimeoutSeconds != nil {
		timeout = time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	out := &corev1.NodeList{}
	err := c.rc.Get().Resource("nodes").VersionedParams(&opts, c.params).Timeout(timeout).Do(ctx).Into(out)
	return out, err
}

func (c *nodeClient) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	var timeout time.Duration
	if opts.TimeoutSeconds != nil {
		timeout = time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	opts.Watch = true
	return c.rc.Get().Resource("nodes").VersionedParams(&opts, c.params).Timeout(timeout).Watch(ctx)
}
