package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/codr/statesync/config"
	"github.com/codr/statesync/offsets"
)

// Credentials and TLS that a server refuses are not an outage: retrying
// does not help, someone must change a secret, a CA or a certificate. The
// words here name the endpoint and the variable to check, in one line,
// where librdkafka and the driver would say "transport failure" or
// "server selection error".

func init() { offsets.RefusalText = kafkaRefusalText }

// refusalTexts caches each refusal's words: /readyz asks for them on every
// probe, and a certificate's are found by a TLS handshake of our own.
var refusalTexts sync.Map // offsets.Refusal → string

func kafkaRefusalText(r offsets.Refusal) string {
	key := r
	key.Detail = ""
	if t, ok := refusalTexts.Load(key); ok {
		return t.(string)
	}
	cfg, _ := config.Load() // what could be read: a problem elsewhere was reported at start
	if r.Endpoint == "" {
		r.Endpoint = cfg.KafkaBrokers
	}
	var t string
	switch r.Kind {
	case offsets.RefusedAuthentication:
		user := cfg.KafkaSASLUsername
		if user == "" {
			user = "(none: " + config.Prefix + "KAFKA_SASL_USERNAME is empty)"
		}
		t = fmt.Sprintf("Kafka %s refused authentication for user %s (SASL/%s): check %sKAFKA_SASL_USERNAME and the password in %s (a wrong password and an unknown user look the same)",
			r.Endpoint, user, r.Mechanism, config.Prefix, kafkaPasswordVar())
	case offsets.RefusedCertificate:
		why, fix := certificateProblem(r.Endpoint, cfg.KafkaProperties["ssl.ca.location"], cfg.KafkaProperties["ssl.ca.pem"])
		t = fmt.Sprintf("Kafka %s: TLS handshake failed: %s: %s", r.Endpoint, why, fix)
	default:
		t = fmt.Sprintf("Kafka %s: TLS handshake failed (%s): check security.protocol and the ssl.* properties in %sKAFKA_PROPERTIES, and that %s is a TLS listener",
			r.Endpoint, librdkafkaReason(r.Detail), config.Prefix, r.Endpoint)
	}
	refusalTexts.Store(key, t)
	return t
}

func kafkaPasswordVar() string {
	if os.Getenv(config.Prefix+"KAFKA_SASL_PASSWORD_FILE") != "" {
		return config.Prefix + "KAFKA_SASL_PASSWORD_FILE"
	}
	return config.Prefix + "KAFKA_SASL_PASSWORD"
}

func mongoURIVar() string {
	if os.Getenv(config.Prefix+"MONGO_URI_FILE") != "" {
		return config.Prefix + "MONGO_URI_FILE"
	}
	return config.Prefix + "MONGO_URI"
}

// librdkafkaReason is the part of a librdkafka line after its broker name.
func librdkafkaReason(detail string) string {
	if i := strings.LastIndex(detail, "/bootstrap: "); i >= 0 {
		return detail[i+len("/bootstrap: "):]
	}
	return detail
}

// certificateProblem says why the broker's certificate did not verify, which
// librdkafka does not ("certificate verify failed" for an expired one and an
// untrusted one alike): a handshake of our own with the same CA tells.
func certificateProblem(endpoint, caFile, caPEM string) (why, fix string) {
	where := "the system's CAs (ssl.ca.location is not set)"
	roots, err := x509.SystemCertPool()
	if caPEM != "" {
		where = "ssl.ca.pem"
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM([]byte(caPEM)) {
			return "the broker's certificate did not verify and ssl.ca.pem holds no readable PEM certificate",
				"check ssl.ca.pem in " + config.Prefix + "KAFKA_PROPERTIES"
		}
	} else if caFile != "" {
		where = "ssl.ca.location " + caFile
		roots = x509.NewCertPool()
		pem, rerr := os.ReadFile(caFile)
		if rerr != nil || !roots.AppendCertsFromPEM(pem) {
			return "the broker's certificate did not verify and " + where + " holds no readable PEM certificate",
				"check ssl.ca.location in " + config.Prefix + "KAFKA_PROPERTIES"
		}
	} else if err != nil {
		roots = nil
	}
	host, _, _ := net.SplitHostPort(endpoint)
	d := &net.Dialer{Timeout: 3 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", endpoint, &tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12})
	if err == nil {
		_ = conn.Close()
		return "the broker's certificate did not verify (it does now, from Go: a certificate changed since, or a check only OpenSSL makes)",
			"check ssl.ca.location in " + config.Prefix + "KAFKA_PROPERTIES and the broker's certificate"
	}
	var invalid x509.CertificateInvalidError
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	switch {
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return fmt.Sprintf("the broker's certificate is expired or not yet valid (valid %s to %s, now %s)",
				invalid.Cert.NotBefore.UTC().Format(time.RFC3339), invalid.Cert.NotAfter.UTC().Format(time.RFC3339), time.Now().UTC().Format(time.RFC3339)),
			"renew the broker's certificate (or check this host's clock)"
	case errors.As(err, &unknown):
		issuer := "an unknown CA"
		if unknown.Cert != nil {
			issuer = fmt.Sprintf("%q", unknown.Cert.Issuer.String())
		}
		return fmt.Sprintf("the broker's certificate is signed by %s, which %s does not hold", issuer, where),
			"set ssl.ca.location in " + config.Prefix + "KAFKA_PROPERTIES to the CA that signed the broker's certificate"
	case errors.As(err, &hostname):
		return fmt.Sprintf("the broker's certificate is not for %s (%v)", host, err),
			"connect by a name the certificate holds (" + config.Prefix + "KAFKA_BROKERS), or reissue it"
	}
	return fmt.Sprintf("the broker's certificate did not verify (%v)", err),
		"check ssl.ca.location in " + config.Prefix + "KAFKA_PROPERTIES and the broker's certificate"
}

// kafkaRefused is the refusal that explains why the brokers do not answer,
// if one was seen lately.
func kafkaRefused() (string, bool) {
	r, ok := offsets.Refused()
	if !ok {
		return "", false
	}
	return offsets.RefusalText(r), true
}

// mongoRefusal words a driver error that is a refusal (credentials, TLS) as
// one line naming the hosts and the variable; ok is false for any other
// error (an outage: the caller's words stand).
func mongoRefusal(err error, cfg config.Config, hosts string) (string, bool) {
	if err == nil {
		return "", false
	}
	msg := err.Error()
	cs, _ := connstring.Parse(cfg.MongoURI)
	user, tlsOn, certFile := "", false, ""
	if cs != nil {
		user, tlsOn, certFile = cs.Username, cs.SSL, cs.SSLClientCertificateKeyFile
	}
	v := mongoURIVar()
	var t string
	switch {
	case strings.Contains(msg, "password authentication failed") || strings.Contains(msg, "AuthenticationFailed") ||
		strings.Contains(msg, "auth error") || strings.Contains(msg, "Authentication failed"):
		if user == "" {
			user = "(none in the URI)"
		}
		t = fmt.Sprintf("MongoDB %s refused authentication for user %s: check the user name, password and authMechanism/authSource in %s", hosts, user, v)
	case strings.Contains(msg, "tls: certificate required") && certFile == "":
		t = fmt.Sprintf("MongoDB %s requires a TLS client certificate and the URI gives none: add tlsCertificateKeyFile=<PEM with certificate and key> to %s", hosts, v)
	case strings.Contains(msg, "tls: certificate required") || strings.Contains(msg, "tls: bad certificate") ||
		strings.Contains(msg, "tls: unknown certificate authority") || strings.Contains(msg, "tls: expired certificate"):
		t = fmt.Sprintf("MongoDB %s refused the TLS client certificate in tlsCertificateKeyFile %s: check that the server trusts the CA that signed it and that it is valid (%s)", hosts, certFile, v)
	case strings.Contains(msg, "x509: certificate signed by unknown authority") || strings.Contains(msg, "failed to verify certificate"):
		t = fmt.Sprintf("MongoDB %s: the server's TLS certificate did not verify (%s): check tlsCAFile in %s", hosts, tlsReason(msg), v)
	case !tlsOn && (strings.Contains(msg, "connection closed unexpectedly by the other side") || strings.Contains(msg, "connection reset by peer")):
		t = fmt.Sprintf("MongoDB %s closed the connection in the handshake and the URI does not ask for TLS: if the server requires TLS, add tls=true (and tlsCAFile=<CA PEM>) to %s", hosts, v)
	default:
		return "", false
	}
	return cfg.Redact(t), true
}

func tlsReason(msg string) string {
	if i := strings.Index(msg, "x509: "); i >= 0 {
		r := msg[i:]
		if j := strings.IndexAny(r, "}\n"); j >= 0 {
			r = r[:j]
		}
		return strings.TrimSpace(r)
	}
	return "x509"
}

// explainingPinger is the sink's Ping with refusals worded by mongoRefusal,
// for watchMongo's log lines.
type explainingPinger struct {
	p     pinger
	cfg   config.Config
	hosts string
}

func (e explainingPinger) Ping(ctx context.Context) error {
	err := e.p.Ping(ctx)
	if msg, ok := mongoRefusal(err, e.cfg, e.hosts); ok {
		return errors.New(msg)
	}
	return err
}
