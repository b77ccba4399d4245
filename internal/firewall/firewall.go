package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
)

// Table is go-pmtud's nftables table in one network namespace.
type Table struct {
	cfg  Config
	opts []nftables.ConnOption

	mu                       sync.Mutex // Install and the tunnel set updates
	tunnelPeers, tunnelAddrs []netip.Addr
}

// New checks cfg and returns a Table that talks to the kernel through
// nftables connections made with opts (nftables.WithNetNSFd picks the
// network namespace). It changes nothing yet.
func New(cfg Config, opts ...nftables.ConnOption) (*Table, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Table{cfg: cfg, opts: opts}, nil
}

// SetIfaces changes the uplinks the rules match (the daemon follows the
// default routes); the next Install applies it.
func (t *Table) SetIfaces(ifaces []string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	next := t.cfg
	next.Ifaces = slices.Clone(ifaces)
	if err := next.validate(); err != nil {
		return err
	}
	t.cfg = next
	return nil
}

func (t *Table) conn() (*nftables.Conn, error) {
	c, err := nftables.New(t.opts...)
	if err != nil {
		return nil, fmt.Errorf("firewall: nftables connection: %w", err)
	}
	return c, nil
}

// Install creates the table, replacing whatever a previous run left behind.
// Add, delete and re-create go in one netlink batch, which the kernel applies
// atomically: there is never a moment without the rules, never two copies,
// and the add makes the delete succeed when there was no table.
func (t *Table) Install() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	c, err := t.conn()
	if err != nil {
		return err
	}
	table, chain, rules := objects(t.cfg)
	c.AddTable(table)
	c.DelTable(table)
	c.AddTable(table)
	c.AddChain(chain)
	for _, set := range sets(t.cfg, table) {
		if err := c.AddSet(set, nil); err != nil {
			return fmt.Errorf("firewall: set %s: %w", set.Name, err)
		}
	}
	if err := t.addTunnelElements(c, table); err != nil {
		return fmt.Errorf("firewall: tunnel sets: %w", err)
	}
	for _, r := range rules {
		c.AddRule(r)
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("firewall: install table inet %s: %w", TableName, err)
	}
	return nil
}

// Remove deletes the table. It is not an error if the table is already gone:
// the same add-then-delete batch as Install makes the delete always valid.
func (t *Table) Remove() error {
	c, err := t.conn()
	if err != nil {
		return err
	}
	table, _, _ := objects(t.cfg)
	c.AddTable(table)
	c.DelTable(table)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("firewall: remove table inet %s: %w", TableName, err)
	}
	return nil
}

// ErrNotInstalled is wrapped by Verify's error when the table, chain or a
// rule is missing or differs from what Install would create.
var ErrNotInstalled = errors.New("firewall: go-pmtud table not installed as configured")

// Verify reports whether the table, its base chain and exactly the expected
// rules are in the kernel, for the readiness check: someone may have flushed
// the ruleset (a firewall reload) after Install.
func (t *Table) Verify() error {
	c, err := t.conn()
	if err != nil {
		return err
	}
	table, chain, rules := objects(t.cfg)
	if _, err := c.ListTableOfFamily(TableName, nftables.TableFamilyINet); err != nil {
		return fmt.Errorf("%w: table inet %s: %v", ErrNotInstalled, TableName, err)
	}
	got, err := c.ListChain(table, ChainName)
	if err != nil {
		return fmt.Errorf("%w: chain %s: %v", ErrNotInstalled, ChainName, err)
	}
	if got.Type != chain.Type || !eqPtr(got.Hooknum, chain.Hooknum) ||
		!eqPtr(got.Priority, chain.Priority) || !eqPtr(got.Policy, chain.Policy) {
		return fmt.Errorf("%w: chain %s is not a filter/prerouting/raw/accept base chain", ErrNotInstalled, ChainName)
	}
	gotRules, err := c.GetRules(table, chain)
	if err != nil {
		return fmt.Errorf("firewall: list rules: %w", err)
	}
	if len(gotRules) != len(rules) {
		return fmt.Errorf("%w: %d rules in chain %s, want %d", ErrNotInstalled, len(gotRules), ChainName, len(rules))
	}
	for i, want := range rules {
		if !sameExprs(gotRules[i].Exprs, want.Exprs) {
			name, _ := userdata.GetString(want.UserData, userdata.TypeComment)
			return fmt.Errorf("%w: rule %d (%s) differs", ErrNotInstalled, i, name)
		}
	}
	return nil
}

func eqPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
