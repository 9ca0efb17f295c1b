package produce

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

var (
	// ErrClosed is returned by Kafka.Write after Close has begun.
	ErrClosed = errors.New("kafka sink: closed")
	// ErrSampleTooLarge: one sample alone encodes to a record larger than
	// KafkaConfig.MaxRecordBytes. The sample is dropped and counted; the
	// rest of its scrape is written.
	ErrSampleTooLarge = errors.New("kafka sink: sample larger than the maximum record size")
)

// UndeliveredError is returned by Kafka.Close when some records were not
// acknowledged by the time Close gave up (or failed for good while it
// waited). Err is why Close stopped waiting (context.DeadlineExceeded when
// the flush timeout passed), or nil when it did not have to give up.
type UndeliveredError struct {
	Records int64 // records not delivered
	Samples int64 // samples in them
	Err     error
}

func (e *UndeliveredError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("kafka sink: close: %d records (%d samples) not delivered", e.Records, e.Samples)
	}
	return fmt.Sprintf("kafka sink: close: %d records (%d samples) not delivered: %v", e.Records, e.Samples, e.Err)
}

func (e *UndeliveredError) Unwrap() error { return e.Err }

// Error kinds, the values of the kind label of shoal_kafka_errors_total.
const (
	ErrKindUnknownTopic = "unknown_topic"
	ErrKindAuth         = "auth"
	ErrKindTimeout      = "timeout"
	ErrKindTooLarge     = "too_large"
	ErrKindNetwork      = "network"
	ErrKindShutdown     = "shutdown"
	ErrKindOther        = "other"
)

var errKinds = []string{ErrKindUnknownTopic, ErrKindAuth, ErrKindTimeout, ErrKindTooLarge, ErrKindNetwork, ErrKindShutdown, ErrKindOther}

// ErrorKind classifies an error the Kafka sink met: one that made it give
// a record up, or a failed connection to a broker. The client retries
// everything retriable by itself (without limit: the sink sets no retry or
// delivery-time limit), so a record error is final; a connection error is
// retried, and says why records wait. The kind says what an operator has
// to fix:
//
//   - unknown_topic: the topic does not exist and was not created
//     (UNKNOWN_TOPIC_OR_PARTITION after the client's retries,
//     UNKNOWN_TOPIC_ID, INVALID_TOPIC_EXCEPTION). Create it, or fix the
//     topic or template.
//   - auth: the brokers refused us: ACLs (TOPIC_ or
//     CLUSTER_AUTHORIZATION_FAILED), SASL (SASL_AUTHENTICATION_FAILED,
//     ILLEGAL_SASL_STATE, UNSUPPORTED_SASL_MECHANISM), TLS certificate
//     errors, or a broker hanging up on the first request, which is what a
//     TLS or SASL mismatch usually looks like.
//   - timeout: a deadline passed (REQUEST_TIMED_OUT, the client's record
//     timeout, a context deadline such as Close's flush timeout, a network
//     timeout).
//   - too_large: the broker or client refused the size
//     (MESSAGE_TOO_LARGE, RECORD_LIST_TOO_LARGE), or one sample alone was
//     larger than the maximum record size (ErrSampleTooLarge). Raise the
//     topic's max.message.bytes or lower --kafka.max-record-bytes.
//   - network: a broker could not be reached or hung up (connection
//     refused or reset, no route, DNS): check the addresses and the
//     brokers.
//   - shutdown: the sink was closing (the client closed, records aborted,
//     the produce context canceled, ErrClosed). The sink also counts under
//     this kind every record that fails after Close ran out of time,
//     whatever error kgo reports for it (often the broker's last one).
//   - other: anything else; the log has the error.
func ErrorKind(err error) string {
	var fre *kgo.ErrFirstReadEOF
	var netErr net.Error
	var unknownAuthority x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var certInvalid x509.CertificateInvalidError
	var certVerify *tls.CertificateVerificationError
	var recordHeader tls.RecordHeaderError
	var opErr *net.OpError
	var dnsErr *net.DNSError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, kerr.UnknownTopicOrPartition), errors.Is(err, kerr.UnknownTopicID),
		errors.Is(err, kerr.InvalidTopicException):
		return ErrKindUnknownTopic
	case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.ClusterAuthorizationFailed),
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed), errors.Is(err, kerr.SaslAuthenticationFailed),
		errors.Is(err, kerr.IllegalSaslState), errors.Is(err, kerr.UnsupportedSaslMechanism),
		errors.As(err, &fre), errors.As(err, &unknownAuthority), errors.As(err, &hostname),
		errors.As(err, &certInvalid), errors.As(err, &certVerify), errors.As(err, &recordHeader):
		return ErrKindAuth
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge),
		errors.Is(err, ErrSampleTooLarge):
		return ErrKindTooLarge
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, kgo.ErrRecordTimeout),
		errors.Is(err, kerr.RequestTimedOut), errors.As(err, &netErr) && netErr.Timeout():
		return ErrKindTimeout
	case errors.Is(err, kgo.ErrClientClosed), errors.Is(err, kgo.ErrAborting),
		errors.Is(err, context.Canceled), errors.Is(err, ErrClosed):
		return ErrKindShutdown
	case errors.As(err, &opErr), errors.As(err, &dnsErr), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		return ErrKindNetwork
	}
	return ErrKindOther
}
