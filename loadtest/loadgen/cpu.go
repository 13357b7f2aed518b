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

// measureCPU samples the CPU time of Redis (INFO cpu: used_cpu_sys +
// used_cpu_user) and of the server process (/proc/PID/stat: utime + stime)
// at from and at to, in the background; the function it returns waits for
// the second sample and gives both deltas (zero for what was not asked).
func measureCPU(o options, from, to time.Time) func() (redis, server time.Duration) {
	type sample struct{ redis, server time.Duration }
	take := func() sample {
		var s sample
		if o.redis != "" {
			if d, err := redisCPU(o.redis); err == nil {
				s.redis = d
			} else {
				fmt.Fprintln(os.Stderr, "loadgen: INFO cpu:", err)
			}
		}
		if o.pid != 0 {
			if d, err := processCPU(o.pid); err == nil {
				s.server = d
			} else {
				fmt.Fprintln(os.Stderr, "loadgen: /proc:", err)
			}
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
	return func() (time.Duration, time.Duration) {
		s := <-done
		return s[1].redis - s[0].redis, s[1].server - s[0].server
	}
}

// redisCPU asks Redis for the CPU time its process has used.
func redisCPU(addr string) (time.Duration, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("*2\r\n$4\r\nINFO\r\n$3\r\ncpu\r\n")); err != nil {
		return 0, err
	}
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(head, "$") {
		return 0, fmt.Errorf("INFO cpu answered %q", head)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(head[1:]))
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, err
	}
	var total float64
	for _, line := range strings.Split(string(body), "\r\n") {
		k, v, _ := strings.Cut(line, ":")
		if k == "used_cpu_sys" || k == "used_cpu_user" {
			f, _ := strconv.ParseFloat(v, 64)
			total += f
		}
	}
	return time.Duration(total * float64(time.Second)), nil
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
