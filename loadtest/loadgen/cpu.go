package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// usage is what a process spent: CPU, and for Redis the bytes it read and
// wrote on its connections.
type usage struct {
	redis, server time.Duration
	in, out       int64 // Redis: total_net_input_bytes, total_net_output_bytes
}

// measureCPU samples the CPU time of Redis (INFO cpu: used_cpu_sys +
// used_cpu_user, and INFO stats' network bytes) and of the server process
// (/proc/PID/stat: utime + stime) at from and at to, in the background; the
// function it returns waits for the second sample and gives the deltas
// (zero for what was not asked).
func measureCPU(o options, from, to time.Time) func() usage {
	type sample = usage
	take := func() sample {
		var s sample
		for _, addr := range o.redis { // a Cluster's masters: summed
			d, in, out, err := redisCPU(addr)
			if err != nil {
				fmt.Fprintln(os.Stderr, "loadgen: INFO cpu:", err)
			}
			s.redis, s.in, s.out = s.redis+d, s.in+in, s.out+out
		}
		for _, pid := range o.pids { // several server processes: summed
			d, err := processCPU(pid)
			if err != nil {
				fmt.Fprintln(os.Stderr, "loadgen: /proc:", err)
			}
			s.server += d
		}
		return s
	}
	done := make(chan [2]sample, 1)
	go func() {
		time.Sleep(time.Until(from))
		a := take()
		time.Sleep(time.Until(to))
		done <- [2]sample{a, take()}
	}()
	return func() usage {
		s := <-done
		return usage{s[1].redis - s[0].redis, s[1].server - s[0].server, s[1].in - s[0].in, s[1].out - s[0].out}
	}
}

// redisCPU asks Redis for the CPU time its process has used, and the bytes
// it has read and written on its connections.
func redisCPU(addr string) (cpu time.Duration, in, out int64, err error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, 0, 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("*3\r\n$4\r\nINFO\r\n$3\r\ncpu\r\n$5\r\nstats\r\n")); err != nil {
		return 0, 0, 0, err
	}
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(head, "$") {
		return 0, 0, 0, fmt.Errorf("INFO cpu stats answered %q", head)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(head[1:]))
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, 0, 0, err
	}
	var total float64
	for _, line := range strings.Split(string(body), "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		switch k {
		case "used_cpu_sys", "used_cpu_user":
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		case "total_net_input_bytes":
			in, _ = strconv.ParseInt(v, 10, 64)
		case "total_net_output_bytes":
			out, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return time.Duration(total * float64(time.Second)), in, out, nil
}

// processCPU reads utime + stime of pid, in clock ticks of 1/100 s (Linux's
// USER_HZ).
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// the command name may hold spaces: fields count from after its ')'
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}
