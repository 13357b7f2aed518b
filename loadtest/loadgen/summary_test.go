package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestPrintRatios checks that a ratio is the median of per-round ratios
// (each run against the one beside it), not a ratio of medians, and that a
// figure the denominator lacks is left blank, Redis CPU too where Redis
// served no refreshes (a memory store's runs see only Redis' idle CPU).
func TestPrintRatios(t *testing.T) {
	runs := map[string][]Result{
		// paired req/s ratios 3, 1, 1: median 1; the medians' ratio would be 2
		"spring/redis":   {{RPS: 300, ServerCPUus: 30, RedisCPUus: 10, RedisInB: 140}, {RPS: 100, ServerCPUus: 60, RedisCPUus: 10, RedisInB: 140}, {RPS: 200, ServerCPUus: 40, RedisCPUus: 10, RedisInB: 140}},
		"typical/redis":  {{RPS: 100, ServerCPUus: 60, RedisCPUus: 20, RedisInB: 150}, {RPS: 100, ServerCPUus: 60, RedisCPUus: 20, RedisInB: 150}, {RPS: 200, ServerCPUus: 80, RedisCPUus: 20, RedisInB: 150}},
		"spring/memory":  {{RPS: 500, ServerCPUus: 20, RedisCPUus: 0.03}},
		"typical/memory": {{RPS: 250, ServerCPUus: 40, RedisCPUus: 0.15, RedisInB: 0.003}},
	}
	tests := []struct {
		pair string
		want string // the row, as printed
	}{
		{"spring/redis=typical/redis", "| spring/redis | typical/redis | 3 | **1.00×** (1.00–3.00) | **0.50×** (0.50–1.00) | **0.50×** (0.50–0.50) |"},
		{"spring/memory=typical/memory", "| spring/memory | typical/memory | 1 | **2.00×** (2.00–2.00) | **0.50×** (0.50–0.50) |  |"},
		{"spring/redis=nobody/redis", ""},
	}
	for _, tc := range tests {
		t.Run(tc.pair, func(t *testing.T) {
			var out bytes.Buffer
			printRatios(&out, runs, []string{tc.pair})
			rows := strings.Split(strings.TrimSpace(out.String()), "\n")
			got := ""
			if last := rows[len(rows)-1]; !strings.HasPrefix(last, "| ---") {
				got = last
			}
			if got != tc.want {
				t.Errorf("row\n%s\nwant\n%s\nwhole output:\n%s", got, tc.want, out.String())
			}
		})
	}
}
