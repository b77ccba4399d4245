package kubeapi

// The objects below hold only the fields the daemon reads; encoding/json
// skips the rest of each object (images, conditions, managed fields) as it
// decodes, so they are never allocated.

// Node is a core/v1 Node.
type Node struct {
	Metadata Meta `json:"metadata"`
	Status   struct {
		Addresses []NodeAddress `json:"addresses"`
	} `json:"status"`
}

// NodeAddress is one of a Node's status addresses.
type NodeAddress struct {
	Type    string `json:"type"`
	Address string `json:"address"`
}

// Service is a core/v1 Service.
type Service struct {
	Metadata Meta `json:"metadata"`
	Spec     struct {
		ClusterIP             string        `json:"clusterIP"`
		ClusterIPs            []string      `json:"clusterIPs"`
		ExternalIPs           []string      `json:"externalIPs"`
		ExternalTrafficPolicy string        `json:"externalTrafficPolicy"`
		Ports                 []ServicePort `json:"ports"`
	} `json:"spec"`
	Status struct {
		LoadBalancer struct {
			Ingress []struct {
				IP string `json:"ip"`
			} `json:"ingress"`
		} `json:"loadBalancer"`
	} `json:"status"`
}

// ServicePort is one of a Service's ports.
type ServicePort struct {
	Protocol string `json:"protocol"`
	Port     int32  `json:"port"`
}

// EndpointSlice is a discovery/v1 EndpointSlice.
type EndpointSlice struct {
	Metadata struct {
		Meta
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Endpoints []struct {
		NodeName *string `json:"nodeName"`
	} `json:"endpoints"`
}

// LabelServiceName is the label naming an EndpointSlice's Service.
const LabelServiceName = "kubernetes.io/service-name"

// Paths of the watched collections, in all namespaces.
const (
	NodesPath          = "/api/v1/nodes"
	ServicesPath       = "/api/v1/services"
	EndpointSlicesPath = "/apis/discovery.k8s.io/v1/endpointslices"
)
