package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzParse feeds arbitrary documents to Parse and ParseJob. Neither may
// panic; every error must be a sorted Errors of *Error; and every job that
// parses must equal itself and survive a marshal/ParseJob round trip.
//
//	go test ./config -run '^$' -fuzz FuzzParse -fuzztime 1m
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yml")
	if err != nil {
		f.Fatal(err)
	}
	files = append(files, "../examples/shoal.yml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, tt := range errorCases {
		f.Add([]byte(tt.doc))
	}
	f.Add([]byte("job_name: a\nstatic_configs: [{targets: [a:1], labels: {x: y}}]\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return // real configs are smaller; keep iterations fast
		}
		cfg, err := Parse(data, "fuzz.yml")
		checkErrors(t, err)
		if err == nil {
			for _, j := range cfg.ScrapeConfigs {
				if !j.Equal(j) {
					t.Fatalf("job %q not equal to itself", j.JobName)
				}
				roundTrip(t, j, cfg.Global)
			}
		}
		j, err := ParseJob(data, "fuzz")
		checkErrors(t, err)
		if err == nil {
			if err := j.SetDefaults(GlobalConfig{}); err != nil {
				checkErrors(t, err)
				return
			}
			roundTrip(t, j, GlobalConfig{})
			if _, err := yaml.Marshal(j); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func checkErrors(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var es Errors
	if !errors.As(err, &es) || len(es) == 0 {
		t.Fatalf("error %v is %T, want non-empty Errors", err, err)
	}
	lines := make([]int, len(es))
	for i, e := range es {
		pe, ok := e.(*Error)
		if !ok {
			t.Fatalf("element %v is %T", e, e)
		}
		lines[i] = pe.Line
	}
	if !slices.IsSorted(lines) {
		t.Fatalf("errors not sorted by line: %v", err)
	}
}
