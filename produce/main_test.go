package produce

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a sink (or its Kafka client, or a kfake cluster) starts
// must be gone when the tests end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
