package offsets

import "testing"

func TestRefusalOfTellsCredentialsAndTLSFromOutages(t *testing.T) {
	for _, c := range []struct {
		name, msg string
		kind      RefusalKind
		endpoint  string
		mechanism string
	}{
		{"a wrong password (log line)", "[thrd:sasl_ssl://127.0.0.1:49094/bootstrap]: sasl_ssl://127.0.0.1:49094/bootstrap: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 (after 397ms in state AUTH_REQ)",
			RefusedAuthentication, "127.0.0.1:49094", "SCRAM-SHA-512"},
		{"a wrong password (error event)", "sasl_ssl://kafka-0.kafka:9094/1: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256",
			RefusedAuthentication, "kafka-0.kafka:9094", "SCRAM-SHA-256"},
		{"an untrusted or expired certificate", "sasl_ssl://127.0.0.1:49095/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified, verify that ssl.ca.location is correctly configured or root CA certificates are installed (install ca-certificates package) (after 360ms in state SSL_HANDSHAKE)",
			RefusedCertificate, "127.0.0.1:49095", ""},
		{"TLS to a plaintext port", "ssl://127.0.0.1:9092/bootstrap: SSL handshake failed: error:0A00010B:SSL routines::wrong version number (after 2ms in state SSL_HANDSHAKE)",
			RefusedTLS, "127.0.0.1:9092", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, ok := refusalOf(c.msg)
			if !ok || r.Kind != c.kind || r.Endpoint != c.endpoint || r.Mechanism != c.mechanism {
				t.Errorf("refusalOf = %+v, %v; want kind %s, endpoint %s, mechanism %q", r, ok, c.kind, c.endpoint, c.mechanism)
			}
		})
	}
	for _, msg := range []string{
		"sasl_ssl://127.0.0.1:49094/bootstrap: Connect to ipv4#127.0.0.1:49094 failed: Connection refused (after 0ms in state CONNECT)",
		"1/1 brokers are down",
		"Local: Broker transport failure",
	} {
		if r, ok := refusalOf(msg); ok {
			t.Errorf("refusalOf(%q) = %+v: an outage is no refusal", msg, r)
		}
	}
}
