// Command ferretdb-stack runs an embedded FerretDB 1.x (postgresql handler) for the local test
// stack started by scripts/stack, and checks that such a server answers (-ping). It lives in its
// own module so that the product's go.mod never depends on FerretDB.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27018", "TCP address to listen on (MongoDB wire protocol)")
	pgURL := flag.String("postgresql-url", "postgres://postgres@127.0.0.1:15432/ferretdb", "PostgreSQL connection string")
	logLevel := flag.String("log-level", "info", "debug, info, warn or error")
	ping := flag.String("ping", "", "do not serve: ping the MongoDB server at this URI and exit 0 if it answers")
	var tl tlsListeners
	flag.StringVar(&tl.addr, "listen-tls", "", "TLS address to listen on (FerretDB's own TLS listener); empty: none")
	flag.StringVar(&tl.cert, "listen-tls-cert-file", "", "server certificate (PEM) of the TLS listeners")
	flag.StringVar(&tl.key, "listen-tls-key-file", "", "server key (PEM) of the TLS listeners")
	flag.StringVar(&tl.ca, "listen-tls-ca-file", "", "with -listen-tls: CA whose client certificates FerretDB requires there")
	flag.StringVar(&tl.mtlsAddr, "listen-mtls", "", "a second TLS address that requires a client certificate signed by -listen-mtls-ca-file, forwarded to -listen")
	flag.StringVar(&tl.mtlsCA, "listen-mtls-ca-file", "", "CA of the client certificates -listen-mtls accepts")
	flag.Parse()

	var err error
	if *ping != "" {
		err = pingServer(*ping)
	} else {
		err = serve(*listen, *pgURL, *logLevel, tl)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb-stack: %v\n", err)
		os.Exit(1)
	}
}

func serve(listen, pgURL, logLevel string, tl tlsListeners) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("-log-level %q: %w", logLevel, err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: listen, TLS: tl.addr, TLSCertFile: tl.cert, TLSKeyFile: tl.key,
			TLSCAFile: tl.ca},
		Logger:        logger,
		Handler:       "postgresql",
		PostgreSQLURL: pgURL,
	})
	if err != nil {
		return fmt.Errorf("start FerretDB on %s with PostgreSQL %s: %w", listen, pgURL, err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if tl.mtlsAddr != "" {
		ln, err := listenMTLS(tl)
		if err != nil {
			return err
		}
		defer ln.Close()
		go forward(ctx, ln, listen, logger)
	}

	logger.Info("ferretdb-stack starting", "addr", listen, "tls", tl.addr, "mtls", tl.mtlsAddr, "postgresql", pgURL)
	if err := f.Run(ctx); err != nil {
		return fmt.Errorf("run FerretDB: %w", err)
	}
	logger.Info("ferretdb-stack stopped")
	return nil
}

// pingServer runs a real command round trip (ping, then a listDatabases that reaches PostgreSQL),
// so "healthy" means FerretDB can talk to its backend, not just that the port is open.
func pingServer(uri string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(4 * time.Second))
	if err != nil {
		return fmt.Errorf("connect %s: %w", uri, err)
	}
	defer func() { _ = client.Disconnect(context.Background()) }()

	if err := client.Ping(ctx, nil); err != nil {
		return fmt.Errorf("ping %s: %w", uri, err)
	}
	if _, err := client.ListDatabaseNames(ctx, bson.D{}); err != nil {
		return fmt.Errorf("listDatabases on %s: %w", uri, err)
	}
	return nil
}
