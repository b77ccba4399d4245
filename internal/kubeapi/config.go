// Package kubeapi is the small Kubernetes API client the daemon needs: it
// lists and watches Nodes, Services and EndpointSlices as JSON, decoding
// each object into a struct of the few fields the daemon reads.
//
// It replaces client-go in the binary. client-go's package initialisation
// alone (schemes, codecs, auth plugins) keeps more memory resident than the
// daemon's whole budget; see docs/benchmarks.md for the figures.
//
// Pure parts (configuration, kubeconfig parsing, list and event decoding)
// live apart from the HTTP client and are tested without a server.
package kubeapi

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// Config says how to reach and authenticate to the API server.
type Config struct {
	// Server is the API server's base URL, https://host:port.
	Server string
	// CAData is the PEM bundle that verifies the server; empty: system roots.
	CAData []byte
	// ServerName overrides the name checked in the server's certificate.
	ServerName string
	// Insecure skips verification of the server's certificate (tests only).
	Insecure bool
	// CertData and KeyData are a PEM client certificate and key.
	CertData, KeyData []byte
	// Token is a bearer token.
	Token string
	// TokenFile is read for the bearer token, and read again as it changes:
	// bound service account tokens are rotated by the kubelet.
	TokenFile string
	// UserAgent is sent with every request; empty: "go-pmtud".
	UserAgent string
}

// Service account files of the in-cluster configuration.
const (
	ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	tokenName         = "token"
	caName            = "ca.crt"
)

// InCluster reports whether the in-cluster configuration would work: the
// API server's address is in the environment and a service account token
// is mounted. It is the `--kubernetes=auto` test.
func InCluster() bool {
	if os.Getenv("KUBERNETES_SERVICE_HOST") == "" || os.Getenv("KUBERNETES_SERVICE_PORT") == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(ServiceAccountDir, tokenName))
	return err == nil
}

// InClusterConfig is the configuration of a pod: the API server from
// KUBERNETES_SERVICE_HOST and _PORT, the service account's CA and token
// (the token file is read again as it rotates).
func InClusterConfig(getenv func(string) string, saDir string) (Config, error) {
	host, port := getenv("KUBERNETES_SERVICE_HOST"), getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return Config{}, errors.New("in-cluster configuration: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set")
	}
	ca, err := os.ReadFile(filepath.Join(saDir, caName))
	if err != nil {
		return Config{}, fmt.Errorf("in-cluster configuration: %w", err)
	}
	tf := filepath.Join(saDir, tokenName)
	if _, err := os.Stat(tf); err != nil {
		return Config{}, fmt.Errorf("in-cluster configuration: %w", err)
	}
	return Config{Server: "https://" + net.JoinHostPort(host, port), CAData: ca, TokenFile: tf}, nil
}

// Load resolves the configuration: the kubeconfig file when given, else the
// in-cluster configuration inside a pod, else $KUBECONFIG (its first file)
// or ~/.kube/config, for runs outside a cluster.
func Load(kubeconfig string) (Config, error) {
	switch {
	case kubeconfig != "":
	case InCluster():
		return InClusterConfig(os.Getenv, ServiceAccountDir)
	case os.Getenv("KUBECONFIG") != "":
		kubeconfig = strings.Split(os.Getenv("KUBECONFIG"), string(os.PathListSeparator))[0]
	default:
		home, err := os.UserHomeDir()
		if err != nil {
			return Config{}, fmt.Errorf("no kubeconfig given, not in a cluster, and no home directory: %w", err)
		}
		kubeconfig = filepath.Join(home, ".kube", "config")
	}
	data, err := os.ReadFile(kubeconfig)
	if err != nil {
		return Config{}, fmt.Errorf("kubeconfig: %w", err)
	}
	cfg, err := ParseKubeconfig(data, filepath.Dir(kubeconfig))
	if err != nil {
		return Config{}, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	return cfg, nil
}
