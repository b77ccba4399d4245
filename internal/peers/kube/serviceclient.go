package kube

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// ServiceClient lists and watches Services in all namespaces; the
// CoreV1().Services("") of a clientset is one.
type ServiceClient interface {
	List(ctx context.Context, opts metav1.ListOptions) (*corev1.ServiceList, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// SliceClient lists and watches EndpointSlices in all namespaces; the
// DiscoveryV1().EndpointSlices("") of a clientset is one.
type SliceClient interface {
	List(ctx context.Context, opts metav1.ListOptions) (*discoveryv1.EndpointSliceList, error)
	Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error)
}

// NewServiceClients returns Service and EndpointSlice clients for cfg:
// REST clients that know only those two types (see NewClientForConfig).
func NewServiceClients(cfg *rest.Config) (ServiceClient, SliceClient, error) {
	core, err := typedClient(cfg, "/api", corev1.SchemeGroupVersion, corev1.AddToScheme)
	if err != nil {
		return nil, nil, err
	}
	disc, err := typedClient(cfg, "/apis", discoveryv1.SchemeGroupVersion, discoveryv1.AddToScheme)
	if err != nil {
		return nil, nil, err
	}
	return &listWatcher[*corev1.ServiceList]{typed: core, resource: "services", newList: func() *corev1.ServiceList { return &corev1.ServiceList{} }},
		&listWatcher[*discoveryv1.EndpointSliceList]{typed: disc, resource: "endpointslices", newList: func() *discoveryv1.EndpointSliceList { return &discoveryv1.EndpointSliceList{} }},
		nil
}

type typed struct {
	rc     *rest.RESTClient
	params runtime.ParameterCodec
}

func typedClient(cfg *rest.Config, apiPath string, gv schema.GroupVersion, add func(*runtime.Scheme) error) (typed, error) {
	scheme := runtime.NewScheme()
	if err := add(scheme); err != nil {
		return typed{}, err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.APIPath = apiPath
	cfg.GroupVersion = &gv
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	cfg.ContentType = runtime.ContentTypeProtobuf
	cfg.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	if cfg.UserAgent == "" {
		cfg.UserAgent = "go-pmtud"
	}
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = 5, 10
	}
	rc, err := rest.RESTClientFor(cfg)
	if err != nil {
		return typed{}, fmt.Errorf("kubernetes client: %w", err)
	}
	return typed{rc: rc, params: runtime.NewParameterCodec(scheme)}, nil
}

// listWatcher lists and watches one resource in all namespaces.
type listWatcher[L runtime.Object] struct {
	typed
	resource string
	newList  func() L
}

func (c *listWatcher[L]) List(ctx context.Context, opts metav1.ListOptions) (L, error) {
	out := c.newList()
	err := c.rc.Get().Resource(c.resource).VersionedParams(&opts, c.params).Timeout(timeoutOf(opts)).Do(ctx).Into(out)
	return out, err
}

func (c *listWatcher[L]) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return c.rc.Get().Resource(c.resource).VersionedParams(&opts, c.params).Timeout(timeoutOf(opts)).Watch(ctx)
}

func timeoutOf(opts metav1.ListOptions) time.Duration {
	if opts.TimeoutSeconds != nil {
		return time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	return 0
}
