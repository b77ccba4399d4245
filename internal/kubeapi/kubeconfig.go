package kubeapi

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// kubeconfig is the part of a kubeconfig file (clientcmd's v1 Config) that
// Config can express: a server with its CA, and a client certificate or a
// token. Exec and auth-provider plugins are refused, not ignored.
type kubeconfig struct {
	CurrentContext string `json:"current-context"`
	Contexts       []struct {
		Name    string `json:"name"`
		Context struct {
			Cluster string `json:"cluster"`
			User    string `json:"user"`
		} `json:"context"`
	} `json:"contexts"`
	Clusters []struct {
		Name    string `json:"name"`
		Cluster struct {
			Server     string `json:"server"`
			CA         string `json:"certificate-authority"`
			CAData     []byte `json:"certificate-authority-data"`
			Insecure   bool   `json:"insecure-skip-tls-verify"`
			ServerName string `json:"tls-server-name"`
			Proxy      string `json:"proxy-url"`
		} `json:"cluster"`
	} `json:"clusters"`
	Users []struct {
		Name string       `json:"name"`
		User kubeconfUser `json:"user"`
	} `json:"users"`
}

type kubeconfUser struct {
	Cert         string `json:"client-certificate"`
	CertData     []byte `json:"client-certificate-data"`
	Key          string `json:"client-key"`
	KeyData      []byte `json:"client-key-data"`
	Token        string `json:"token"`
	TokenFile    string `json:"tokenFile"`
	Username     string `json:"username"`
	Exec         any    `json:"exec"`
	AuthProvider any    `json:"auth-provider"`
}

// ParseKubeconfig returns the configuration of the current context of a
// kubeconfig file. Relative file names in it are relative to dir, as
// kubectl has them; the CA and client certificate files are read now.
func ParseKubeconfig(data []byte, dir string) (Config, error) {
	var kc kubeconfig
	if err := yaml.Unmarshal(data, &kc); err != nil {
		return Config{}, err
	}
	if kc.CurrentContext == "" {
		return Config{}, errors.New("no current-context")
	}
	var clusterName, userName string
	found := false
	for _, c := range kc.Contexts {
		if c.Name == kc.CurrentContext {
			clusterName, userName, found = c.Context.Cluster, c.Context.User, true
		}
	}
	if !found {
		return Config{}, fmt.Errorf("context %q not found", kc.CurrentContext)
	}
	var cfg Config
	found = false
	for _, c := range kc.Clusters {
		if c.Name != clusterName {
			continue
		}
		cl := c.Cluster
		if cl.Proxy != "" {
			return Config{}, fmt.Errorf("cluster %q: proxy-url is not supported", clusterName)
		}
		cfg = Config{Server: cl.Server, CAData: cl.CAData, Insecure: cl.Insecure, ServerName: cl.ServerName}
		if len(cfg.CAData) == 0 && cl.CA != "" {
			var err error
			if cfg.CAData, err = os.ReadFile(resolve(dir, cl.CA)); err != nil {
				return Config{}, fmt.Errorf("cluster %q: %w", clusterName, err)
			}
		}
		found = true
	}
	if !found || cfg.Server == "" {
		return Config{}, fmt.Errorf("cluster %q not found or without a server", clusterName)
	}
	for _, u := range kc.Users {
		if u.Name == userName {
			if err := u.User.apply(&cfg, dir); err != nil {
				return Config{}, fmt.Errorf("user %q: %w", userName, err)
			}
		}
	}
	return cfg, nil
}

func (u kubeconfUser) apply(cfg *Config, dir string) error {
	if u.Exec != nil || u.AuthProvider != nil || u.Username != "" {
		return errors.New("only client certificates and tokens are supported (no exec, auth-provider or basic auth)")
	}
	cfg.CertData, cfg.KeyData, cfg.Token = u.CertData, u.KeyData, u.Token
	if u.TokenFile != "" && u.Token == "" {
		cfg.TokenFile = resolve(dir, u.TokenFile)
	}
	var err error
	if len(cfg.CertData) == 0 && u.Cert != "" {
		if cfg.CertData, err = os.ReadFile(resolve(dir, u.Cert)); err != nil {
			return err
		}
	}
	if len(cfg.KeyData) == 0 && u.Key != "" {
		if cfg.KeyData, err = os.ReadFile(resolve(dir, u.Key)); err != nil {
			return err
		}
	}
	if (len(cfg.CertData) == 0) != (len(cfg.KeyData) == 0) {
		return errors.New("a client certificate needs its key and a key its certificate")
	}
	return nil
}

func resolve(dir, name string) string {
	if name == "" || filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(dir, name)
}
