package main

import "testing"

// TestMutationsApply: every mutation of the list still finds its piece of
// code exactly once, so that make mutants breaks what it says it breaks.
// (The mutations themselves run in make mutants: minutes, not seconds.)
func TestMutationsApply(t *testing.T) {
	names := map[string]bool{}
	for _, m := range mutations {
		if names[m.Name] {
			t.Errorf("two mutations named %s", m.Name)
		}
		names[m.Name] = true
		if m.From == m.To || len(m.Packages) == 0 || m.Breaks == "" {
			t.Errorf("%s: a mutation changes something, names what it breaks and the tests that catch it", m.Name)
		}
		if err := m.applies("../.."); err != nil {
			t.Errorf("%s is stale: %v", m.Name, err)
		}
	}
}
