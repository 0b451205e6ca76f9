package main

import (
	"bufio"
	"encoding/json"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// import's MongoDB start check fails after the HTTP server and the MongoDB
// client are built, before anything of Kafka's: those two are closed, in
// reverse order, each step logged, and the HTTP port is free again.
func TestABuildThatFailsHalfwayClosesWhatItBuilt(t *testing.T) {
	defer func(d time.Duration) { brokerWait = d }(brokerWait)
	brokerWait = time.Second
	code, stderr, _ := cliWith(t, time.Minute, map[string]string{
		"STATESYNC_KAFKA_BROKERS":  "127.0.0.1:1",
		"STATESYNC_MONGO_URI":      "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=500",
		"STATESYNC_MONGO_DATABASE": "halfway",
		"STATESYNC_HTTP_ADDR":      "127.0.0.1:0",
		"STATESYNC_LOG_FORMAT":     "json",
		"STATESYNC_LOG_LEVEL":      "info",
	}, "import")
	if code != exitUnreachable {
		t.Errorf("exit %d, want %d (MongoDB unreachable)\n%s", code, exitUnreachable, tail(stderr))
	}
	var addr string
	var closing []string
	sc := bufio.NewScanner(strings.NewReader(stderr))
	for sc.Scan() {
		var l struct{ Msg, Addr, Error string }
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue // the command's own message
		}
		switch {
		case l.Addr != "":
			addr = l.Addr
		case strings.HasPrefix(l.Msg, "clos"):
			closing = append(closing, strings.TrimSpace(l.Msg+" "+l.Error))
		}
	}
	want := []string{"closing MongoDB client", "closed MongoDB client", "closing HTTP server", "closed HTTP server"}
	if !slices.Equal(closing, want) {
		t.Errorf("closed %q, want %q\n%s", closing, want, tail(stderr))
	}
	if addr == "" {
		t.Fatalf("the HTTP server's address is not logged:\n%s", tail(stderr))
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after the exit", addr)
	}
}
