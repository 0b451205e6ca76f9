package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/codr/statesync/config"
)

func TestMongoRefusalNamesTheHostAndWhatToCheck(t *testing.T) {
	withTLS := config.Config{MongoURI: "mongodb://statesync:s3cret-pw@db:27017/?tls=true&tlsCAFile=/ca.pem&authMechanism=PLAIN"}
	noTLS := config.Config{MongoURI: "mongodb://statesync:s3cret-pw@db:27017/?authMechanism=PLAIN"}
	for _, c := range []struct {
		name string
		cfg  config.Config
		err  string
		want string // "" : not a refusal
	}{
		{"FerretDB: PostgreSQL refused the password", withTLS, "(InternalError) [pool.go:129 pool.(*Pool).Get] failed to connect to `user=statesync database=ferretdb`: 127.0.0.1:45432: FATAL: password authentication failed for user \"statesync\" (SQLSTATE 28P01)",
			"MongoDB db:27017 refused authentication for user statesync"},
		{"MongoDB: authentication failed", withTLS, "auth error: sasl conversation error: unable to authenticate using mechanism \"SCRAM-SHA-256\": (AuthenticationFailed) Authentication failed.",
			"MongoDB db:27017 refused authentication for user statesync"},
		{"a TLS port, no tls in the URI", noTLS, "server selection error: context deadline exceeded, current topology: { Type: Unknown, Servers: [{ Addr: db:27017, Type: Unknown, Last error: connection(db:27017[-12]) incomplete read of message header: connection closed unexpectedly by the other side: EOF }, ] }",
			"add tls=true"},
		{"a client certificate required, none given", withTLS, "Last error: connection(db:27017[-12]) incomplete read of message header: remote error: tls: certificate required }",
			"requires a TLS client certificate and the URI gives none"},
		{"an untrusted server certificate", withTLS, "Last error: tls: failed to verify certificate: x509: certificate signed by unknown authority }",
			"the server's TLS certificate did not verify (x509: certificate signed by unknown authority): check tlsCAFile"},
		{"an outage", withTLS, "server selection error: context deadline exceeded, current topology: { Last error: dial tcp db:27017: connect: connection refused }", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := mongoRefusal(errors.New(c.err), c.cfg, "db:27017")
			if c.want == "" {
				if ok {
					t.Errorf("an outage read as a refusal: %q", got)
				}
				return
			}
			if !ok || !strings.Contains(got, c.want) || !strings.Contains(got, "STATESYNC_MONGO_URI") {
				t.Errorf("mongoRefusal = %q, %v; want it to say %q and name the variable", got, ok, c.want)
			}
			if strings.Contains(got, "s3cret-pw") {
				t.Errorf("the password leaked: %q", got)
			}
		})
	}
}
