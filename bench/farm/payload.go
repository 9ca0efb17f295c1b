package farm

import (
	"bytes"
	"fmt"
	"math"
	"strconv"

	"github.com/klauspost/compress/gzip"
)

// variant is one precomputed response of a farm: the payload with its own
// sample values, as a complete HTTP response (status line, headers, body),
// identity and, when the farm gzips, gzip-encoded. Variants are built once
// in Start and shared read-only by every target and connection.
type variant struct {
	plain, gz         []byte // whole response
	plainHdr, gzHdr   int    // header length within plain and gz (HEAD answers)
	plainBody, gzBody int    // body length
	samples           int
}

// buildVariants returns n responses serving payload, variant k with every
// finite sample value v rewritten as v+k (variant 0 is the payload as is).
// Consecutive variants therefore differ in every finite value, and a target
// that rotates through them never serves the same values twice in a row.
// NaN and ±Inf values are kept: there is no "next" value for them.
func buildVariants(payload []byte, n int, gz bool, contentType string) ([]variant, error) {
	vs := make([]variant, n)
	for k := range vs {
		body, samples, err := rewriteValues(payload, k)
		if err != nil {
			return nil, err
		}
		v := &vs[k]
		v.samples = samples
		v.plain, v.plainHdr = response(body, contentType, "")
		v.plainBody = len(body)
		if gz {
			var buf bytes.Buffer
			// Default level: what client_golang's promhttp uses, so the
			// scraper decompresses a realistic stream.
			zw := gzip.NewWriter(&buf)
			if _, err := zw.Write(body); err != nil {
				return nil, err
			}
			if err := zw.Close(); err != nil {
				return nil, err
			}
			v.gz, v.gzHdr = response(buf.Bytes(), contentType, "gzip")
			v.gzBody = buf.Len()
		}
	}
	return vs, nil
}

// response renders a 200 response with body. It returns the whole response
// and the length of its header block.
func response(body []byte, contentType, encoding string) ([]byte, int) {
	var b bytes.Buffer
	b.Grow(len(body) + 256)
	b.WriteString("HTTP/1.1 200 OK\r\nContent-Type: ")
	b.WriteString(contentType)
	b.WriteString("\r\nContent-Length: ")
	b.WriteString(strconv.Itoa(len(body)))
	if encoding != "" {
		b.WriteString("\r\nContent-Encoding: ")
		b.WriteString(encoding)
	}
	b.WriteString("\r\nVary: Accept-Encoding\r\n\r\n")
	hdr := b.Len()
	b.Write(body)
	return b.Bytes(), hdr
}

// rewriteValues copies payload with every finite sample value v replaced by
// v+k, and counts the sample lines. The payload is Prometheus or OpenMetrics
// text: comment lines and blank lines are copied as they are; on a sample
// line the series (name and braced labels, whose quoted values may contain
// spaces, braces and escaped quotes) is followed by the value and an
// optional timestamp, which is kept.
func rewriteValues(payload []byte, k int) ([]byte, int, error) {
	out := make([]byte, 0, len(payload)+len(payload)/8)
	samples := 0
	for lineNo := 1; len(payload) > 0; lineNo++ {
		line := payload
		rest := []byte(nil)
		if i := bytes.IndexByte(payload, '\n'); i >= 0 {
			line, rest = payload[:i], payload[i+1:]
		}
		payload = rest
		trimmed := bytes.TrimLeft(line, " \t")
		if len(trimmed) == 0 || trimmed[0] == '#' {
			out = append(out, line...)
			out = append(out, '\n')
			continue
		}
		vs, ve, err := valueSpan(line)
		if err != nil {
			return nil, 0, fmt.Errorf("payload line %d: %w", lineNo, err)
		}
		f, err := strconv.ParseFloat(string(line[vs:ve]), 64)
		if err != nil {
			return nil, 0, fmt.Errorf("payload line %d: value %q: %w", lineNo, line[vs:ve], err)
		}
		samples++
		out = append(out, line[:vs]...)
		if k == 0 || math.IsNaN(f) || math.IsInf(f, 0) {
			out = append(out, line[vs:ve]...)
		} else {
			nf := f + float64(k)
			if nf == f { // |f| too large for +k to show
				nf = f * (1 + float64(k)*1e-9)
			}
			out = strconv.AppendFloat(out, nf, 'g', -1, 64)
		}
		out = append(out, line[ve:]...)
		out = append(out, '\n')
	}
	return out, samples, nil
}

// valueSpan finds the value token of a sample line: after the metric name,
// the optional braced label set and the blanks that follow.
func valueSpan(line []byte) (start, end int, err error) {
	i := 0
	for i < len(line) && line[i] != '{' && line[i] != ' ' && line[i] != '\t' {
		i++
	}
	if i < len(line) && line[i] == '{' {
		inQuote := false
		for i++; i < len(line); i++ {
			c := line[i]
			if inQuote {
				switch c {
				case '\\':
					i++ // skip the escaped character
				case '"':
					inQuote = false
				}
				continue
			}
			if c == '"' {
				inQuote = true
			} else if c == '}' {
				break
			}
		}
		if i >= len(line) {
			return 0, 0, fmt.Errorf("unterminated label set")
		}
		i++
	}
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	start = i
	for i < len(line) && line[i] != ' ' && line[i] != '\t' && line[i] != '\r' {
		i++
	}
	if i == start {
		return 0, 0, fmt.Errorf("no value")
	}
	return start, i, nil
}

// KSMPayload returns a kube-state-metrics exposition of a cluster of pods
// pods (one container each, a hundred pods per namespace, 25 per node):
// the pod and container families a real one serves, with their labels
// (uids, images, IPs, owners), 18 series per pod, in families as the
// exposition format requires. 5000 pods make 90,000 series and about 17
// MB of text: the kind of huge target (BigPayload) a scraper of a large
// cluster has one of, among thousands of small ones. Deterministic.
func KSMPayload(pods int) []byte {
	type pod struct{ ns, name, uid, node, ip, owner string }
	ps := make([]pod, pods)
	for i := range ps {
		h := uint64(i)*0x9e3779b97f4a7c15 + 0x632be59bd9b4e019
		h ^= h >> 29
		ps[i] = pod{
			ns:    fmt.Sprintf("team-%03d", i/100),
			owner: fmt.Sprintf("svc-%03d-%d-%08x", i/100, i%100/10, uint32(h>>32)),
			uid:   fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", uint32(h), uint16(h>>32), uint16(h>>48)&0xfff, uint16(h>>20)&0xfff, h&0xffffffffffff),
			node:  fmt.Sprintf("node-%04d.pool-b.example.internal", i/25),
			ip:    fmt.Sprintf("10.%d.%d.%d", 64+i>>16, i>>8&0xff, i&0xff),
		}
		ps[i].name = fmt.Sprintf("%s-%05x", ps[i].owner, uint32(h>>12)&0xfffff)
	}
	var b bytes.Buffer
	family := func(name, typ, help string, series func(p *pod, i int)) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
		for i := range ps {
			series(&ps[i], i)
		}
	}
	base := func(name string, p *pod) {
		fmt.Fprintf(&b, `%s{namespace="%s",pod="%s",uid="%s"`, name, p.ns, p.name, p.uid)
	}
	family("kube_pod_info", "gauge", "[STABLE] Information about pod.", func(p *pod, i int) {
		base("kube_pod_info", p)
		fmt.Fprintf(&b, `,host_ip="10.1.%d.%d",pod_ip="%s",node="%s",created_by_kind="ReplicaSet",created_by_name="%s",priority_class="",host_network="false"} 1`+"\n", i/25>>8, i/25&0xff, p.ip, p.node, p.owner)
	})
	family("kube_pod_owner", "gauge", "[STABLE] Information about the Pod's owner.", func(p *pod, i int) {
		base("kube_pod_owner", p)
		fmt.Fprintf(&b, `,owner_kind="ReplicaSet",owner_name="%s",owner_is_controller="true"} 1`+"\n", p.owner)
	})
	family("kube_pod_created", "gauge", "[STABLE] Unix creation timestamp", func(p *pod, i int) {
		base("kube_pod_created", p)
		fmt.Fprintf(&b, "} %d\n", 1.76e9+i*37)
	})
	family("kube_pod_status_phase", "gauge", "[STABLE] The pods current phase.", func(p *pod, i int) {
		for _, ph := range [...]string{"Pending", "Succeeded", "Failed", "Unknown", "Running"} {
			base("kube_pod_status_phase", p)
			fmt.Fprintf(&b, `,phase="%s"} %d`+"\n", ph, btoi(ph == "Running"))
		}
	})
	family("kube_pod_status_ready", "gauge", "[STABLE] Describes whether the pod is ready to serve requests.", func(p *pod, i int) {
		for _, c := range [...]string{"true", "false", "unknown"} {
			base("kube_pod_status_ready", p)
			fmt.Fprintf(&b, `,condition="%s"} %d`+"\n", c, btoi(c == "true"))
		}
	})
	container := func(name string, p *pod) {
		base(name, p)
		fmt.Fprintf(&b, `,container="%s"`, p.owner[:len(p.owner)-9])
	}
	family("kube_pod_container_info", "gauge", "[STABLE] Information about a container in a pod.", func(p *pod, i int) {
		container("kube_pod_container_info", p)
		fmt.Fprintf(&b, `,image_spec="registry.example.internal/%s:v1.%d.0",image="registry.example.internal/%s:v1.%d.0",image_id="registry.example.internal/%s@sha256:%064x",container_id="containerd://%064x"} 1`+"\n",
			p.ns, i%7, p.ns, i%7, p.ns, i*7919, i*104729)
	})
	for _, f := range [...]struct{ name, help string }{
		{"kube_pod_container_resource_requests", "The number of requested request resource by a container."},
		{"kube_pod_container_resource_limits", "The number of requested limit resource by a container."},
	} {
		family(f.name, "gauge", f.help, func(p *pod, i int) {
			container(f.name, p)
			fmt.Fprintf(&b, `,node="%s",resource="cpu",unit="core"} 0.%d`+"\n", p.node, 1+i%9)
			container(f.name, p)
			fmt.Fprintf(&b, `,node="%s",resource="memory",unit="byte"} %d`+"\n", p.node, (64+i%16*32)<<20)
		})
	}
	family("kube_pod_container_status_restarts_total", "counter", "[STABLE] The number of container restarts per container.", func(p *pod, i int) {
		container("kube_pod_container_status_restarts_total", p)
		fmt.Fprintf(&b, "} %d\n", i%13/12*(i%5))
	})
	family("kube_pod_container_status_running", "gauge", "[STABLE] Describes whether the container is currently in running state.", func(p *pod, i int) {
		container("kube_pod_container_status_running", p)
		b.WriteString("} 1\n")
	})
	return b.Bytes()
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
