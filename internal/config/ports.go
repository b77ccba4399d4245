package config

// Default ports. --metrics-port keeps the seed's 30040, but the health and
// tunnel ports sit outside Kubernetes' NodePort range (30000-32767): a
// Service given nodePort 30041 would make kube-proxy DNAT the kubelet's
// probes (or, for 30042, the peers' tunnel datagrams) away from a
// hostNetwork listener. 4440-4442 are also below Linux's ephemeral range
// (32768-60999, so no outgoing connection can hold them), outside the
// Prometheus exporter range 9100-9999 (fully allocated), and unused by the
// usual node agents: kubelet 10248/10250, kube-proxy 10249/10256, etcd
// 2379-2381, node-exporter 9100, Calico 179/5473/9091/9099, Cilium 4240/4244
// and 9962-9965, MetalLB 7472/7473/7946, flannel 8472, VXLAN 4789,
// Geneve 6081, WireGuard 51820. The chart serves metrics on 4440.
const (
	// ChartMetricsPort is the metrics port the chart and manifests use.
	ChartMetricsPort = 4440
	// DefaultHealthPort serves /healthz and /readyz (also on the metrics port).
	DefaultHealthPort = 4441
	// DefaultTunnelPort is the tunnel transport's UDP port.
	DefaultTunnelPort = 4442
)
