package produce

import (
	"fmt"
	"strings"
	"sync"
)

// jobPlaceholder is the one placeholder of KafkaConfig.TopicTemplate.
const jobPlaceholder = "{{job}}"

// ValidateTopic reports whether name is a valid Kafka topic name: 1 to 249
// bytes of ASCII letters, digits, '.', '_' and '-', and not "." or "..".
func ValidateTopic(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("kafka: empty topic name")
	case name == "." || name == "..":
		return fmt.Errorf("kafka: topic name %q is not allowed", name)
	case len(name) > maxTopicLen:
		return fmt.Errorf("kafka: topic name %q is longer than %d bytes", name, maxTopicLen)
	}
	for i := 0; i < len(name); i++ {
		if !topicChar(name[i]) {
			return fmt.Errorf("kafka: topic name %q: character %q not allowed (want ASCII letters, digits, '.', '_', '-')", name, name[i])
		}
	}
	return nil
}

func topicChar(c byte) bool {
	return c == '.' || c == '_' || c == '-' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// topicTemplate is a parsed KafkaConfig.TopicTemplate: the literal text
// around each {{job}}.
type topicTemplate struct {
	parts []string // len(parts) = number of placeholders + 1
}

// parseTopicTemplate checks that s has at least one {{job}}, no other
// "{{" or "}}", and only topic-name characters outside placeholders.
func parseTopicTemplate(s string) (topicTemplate, error) {
	parts := strings.Split(s, jobPlaceholder)
	if len(parts) == 1 {
		return topicTemplate{}, fmt.Errorf("kafka: topic template %q has no %s placeholder", s, jobPlaceholder)
	}
	for _, p := range parts {
		if strings.Contains(p, "{{") || strings.Contains(p, "}}") {
			return topicTemplate{}, fmt.Errorf("kafka: topic template %q: only the %s placeholder is supported", s, jobPlaceholder)
		}
		for i := 0; i < len(p); i++ {
			if !topicChar(p[i]) {
				return topicTemplate{}, fmt.Errorf("kafka: topic template %q: character %q not allowed in a topic name (want ASCII letters, digits, '.', '_', '-')", s, p[i])
			}
		}
	}
	return topicTemplate{parts: parts}, nil
}

// expand returns the topic of job: the template with job sanitized into
// every placeholder, cut to 249 bytes. "." and ".." (a template of just
// {{job}} and such a job name) become "_" and "__".
func (t topicTemplate) expand(job string) string {
	var b strings.Builder
	for i, p := range t.parts {
		if i > 0 {
			for j := 0; j < len(job); j++ {
				if c := job[j]; topicChar(c) {
					b.WriteByte(c)
				} else {
					b.WriteByte('_')
				}
			}
		}
		b.WriteString(p)
	}
	s := b.String()
	if len(s) > maxTopicLen {
		s = s[:maxTopicLen]
	}
	switch s {
	case "":
		return "_"
	case ".":
		return "_"
	case "..":
		return "__"
	}
	return s
}

// topics maps job names to topics. Without a template every job maps to
// the one topic with no lookup at all. With one, the topic of a job is
// expanded once and cached: jobs are few and long-lived, and the lookup by
// a string key allocates nothing.
type topics struct {
	static string
	tmpl   topicTemplate

	mu    sync.RWMutex
	byJob map[string]string
}

func newTopics(cfg *KafkaConfig) (*topics, error) {
	if cfg.TopicTemplate == "" {
		return &topics{static: cfg.Topic}, nil
	}
	t, err := parseTopicTemplate(cfg.TopicTemplate)
	if err != nil {
		return nil, err
	}
	return &topics{tmpl: t, byJob: map[string]string{}}, nil
}

// forJob returns the topic of job's records.
func (t *topics) forJob(job string) string {
	if t.byJob == nil {
		return t.static
	}
	t.mu.RLock()
	s, ok := t.byJob[job]
	t.mu.RUnlock()
	if ok {
		return s
	}
	s = t.tmpl.expand(job)
	t.mu.Lock()
	t.byJob[strings.Clone(job)] = s
	t.mu.Unlock()
	return s
}
