package offsets

import (
	"regexp"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// RefusalKind says what a broker refused, or what was refused of it.
type RefusalKind string

const (
	// RefusedAuthentication: the broker refused the SASL credentials (a
	// wrong password and an unknown user look the same to the client).
	RefusedAuthentication RefusalKind = "authentication"
	// RefusedCertificate: the broker's certificate did not verify
	// (untrusted, expired, wrong name).
	RefusedCertificate RefusalKind = "certificate"
	// RefusedTLS: the TLS handshake failed otherwise (a plaintext port, a
	// protocol mismatch, a client certificate the broker refused).
	RefusedTLS RefusalKind = "tls"
)

// Refusal is a broker connection that failed on credentials or TLS rather
// than on reachability: retrying does not help, an operator must change
// something. librdkafka retries it for ever and reports it as a transport
// failure, so the brokers would otherwise read as "unreachable".
type Refusal struct {
	Endpoint  string // host:port of the broker, as librdkafka names it
	Kind      RefusalKind
	Mechanism string // the SASL mechanism, for RefusedAuthentication
	Detail    string // librdkafka's own words
}

// RefusalText words a refusal for the log and for /readyz; the command
// sets it to name its variables. The default names librdkafka properties.
var RefusalText = func(r Refusal) string {
	switch r.Kind {
	case RefusedAuthentication:
		return "Kafka " + r.Endpoint + " refused authentication (SASL/" + r.Mechanism + "): check sasl.username and sasl.password"
	case RefusedCertificate:
		return "Kafka " + r.Endpoint + ": the broker's TLS certificate did not verify: check ssl.ca.location and the broker's certificate"
	}
	return "Kafka " + r.Endpoint + ": TLS handshake failed: check security.protocol and the ssl.* properties"
}

var (
	endpointRe  = regexp.MustCompile(`(?i)\b(?:sasl_ssl|ssl|sasl_plaintext|plaintext)://([^/\s]+)/`)
	mechanismRe = regexp.MustCompile(`SASL mechanism ([A-Z0-9-]+)`)
)

// refusalOf reads a librdkafka log line or error as a refusal.
func refusalOf(msg string) (Refusal, bool) {
	var r Refusal
	switch {
	case strings.Contains(msg, "SASL authentication error") || strings.Contains(msg, "invalid credentials"):
		r.Kind = RefusedAuthentication
		if m := mechanismRe.FindStringSubmatch(msg); m != nil {
			r.Mechanism = m[1]
		}
	case strings.Contains(msg, "SSL handshake failed") && strings.Contains(msg, "certificate verify failed"):
		r.Kind = RefusedCertificate
	case strings.Contains(msg, "SSL handshake failed"):
		r.Kind = RefusedTLS
	default:
		return r, false
	}
	if m := endpointRe.FindStringSubmatch(msg); m != nil {
		r.Endpoint = m[1]
	}
	r.Detail = msg
	return r, true
}

// refusalFresh: a refusal seen this recently is taken as why the brokers
// do not answer. refusalEvery: how often one that goes on is logged again.
var (
	refusalFresh = time.Minute
	refusalEvery = 5 * time.Minute
)

// refusals is the process's record of refusals: every client of the
// process (consumer, producers, admin) reports into it, so a refused
// password is one line, not one per client and reconnect.
var refusals struct {
	mu     sync.Mutex
	latest Refusal
	at     time.Time
	logged map[string]time.Time // endpoint|kind → last line
}

// refused records msg when it is a refusal, logging it once (then every
// refusalEvery while it goes on), and reports whether it was one.
func refused(log *zap.Logger, role, msg string) bool {
	r, ok := refusalOf(msg)
	if !ok {
		return false
	}
	now := time.Now()
	key := r.Endpoint + "|" + string(r.Kind)
	refusals.mu.Lock()
	refusals.latest, refusals.at = r, now
	if refusals.logged == nil {
		refusals.logged = map[string]time.Time{}
	}
	last, seen := refusals.logged[key]
	logIt := !seen || now.Sub(last) >= refusalEvery
	if logIt {
		refusals.logged[key] = now
	}
	refusals.mu.Unlock()
	if logIt {
		text := RefusalText(r)
		if seen {
			text = "still: " + text
		}
		log.Error(text, zap.String("endpoint", r.Endpoint), zap.String("refused", string(r.Kind)),
			zap.String("client", role), zap.String("librdkafka", r.Detail))
	}
	return true
}

// Refused returns the latest refusal when it is recent: why the brokers
// do not answer, better said than "unreachable".
func Refused() (Refusal, bool) {
	refusals.mu.Lock()
	defer refusals.mu.Unlock()
	if refusals.at.IsZero() || time.Since(refusals.at) > refusalFresh {
		return Refusal{}, false
	}
	return refusals.latest, true
}
