package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"
)

// tlsListeners: FerretDB's own TLS listener (-listen-tls), and a second one that requires a client
// certificate (-listen-mtls). FerretDB 1.x has one TLS listener, so the second is a TLS terminator
// here that forwards each verified connection to FerretDB's TCP listener.
type tlsListeners struct {
	addr, cert, key, ca string
	mtlsAddr, mtlsCA    string
}

func listenMTLS(tl tlsListeners) (net.Listener, error) {
	if tl.cert == "" || tl.key == "" || tl.mtlsCA == "" {
		return nil, errors.New("-listen-mtls needs -listen-tls-cert-file, -listen-tls-key-file and -listen-mtls-ca-file")
	}
	cert, err := tls.LoadX509KeyPair(tl.cert, tl.key)
	if err != nil {
		return nil, fmt.Errorf("-listen-mtls: server certificate: %w", err)
	}
	pem, err := os.ReadFile(tl.mtlsCA)
	if err != nil {
		return nil, fmt.Errorf("-listen-mtls-ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("-listen-mtls-ca-file %s: no PEM certificate in it", tl.mtlsCA)
	}
	ln, err := tls.Listen("tcp", tl.mtlsAddr, &tls.Config{Certificates: []tls.Certificate{cert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, fmt.Errorf("-listen-mtls %s: %w", tl.mtlsAddr, err)
	}
	return ln, nil
}

// forward serves the client-certificate listener: each connection, once its handshake verified
// the client's certificate, is piped to FerretDB's TCP listener at backend.
func forward(ctx context.Context, ln net.Listener, backend string, logger *slog.Logger) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				logger.Warn("mtls accept", "error", err)
			}
			return
		}
		go func() {
			defer c.Close()
			tc := c.(*tls.Conn)
			hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := tc.HandshakeContext(hctx)
			cancel()
			if err != nil {
				logger.Warn("mtls handshake refused", "remote", c.RemoteAddr().String(), "error", err)
				return
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				logger.Warn("mtls backend", "error", err)
				return
			}
			defer b.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(b, tc); _ = b.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
			go func() { _, _ = io.Copy(tc, b); _ = tc.CloseWrite(); done <- struct{}{} }()
			<-done
			<-done
		}()
	}
}
