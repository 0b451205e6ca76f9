package deadletter

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/codr/statesync/record"
)

// spec is a dead letter of a test: its name, origin topic, key, class and
// minute of error.at; "unreadable" makes a message Parse refuses.
type spec struct {
	name, topic, key, class string
	minute                  int
}

var t0 = time.Date(2030, 1, 1, 10, 0, 0, 0, time.UTC)

// topicOf writes the letters of specs as the dead-letter topic holds them,
// at offsets 0, 1, …
func topicOf(specs []spec) []record.Message {
	var out []record.Message
	for i, s := range specs {
		m := record.Message{Topic: "codr.svc.mongo.dlt", Offset: int64(i)}
		if s.class == "unreadable" {
			m.Key, m.Value = []byte(s.key), []byte(`{"neither":"headers nor record"}`)
			out = append(out, m)
			continue
		}
		orig := record.Message{Topic: s.topic, Offset: int64(100 + i), Key: []byte(s.key), Value: []byte(`{"payload":{}}`)}
		m.Key, m.Value, m.Headers = Encode(orig, &record.PoisonError{Class: s.class, Err: errors.New("x")}, t0.Add(time.Duration(s.minute)*time.Minute))
		out = append(out, m)
	}
	return out
}

// Select: which dead letters a replay sends, which it skips as superseded by
// a newer letter of the same key, and which it cannot read.
func TestSelectReplaysTheNewestMatchingLetterOfEachKey(t *testing.T) {
	const user, org = "codr.state.user", "codr.state.org"
	tests := []struct {
		name       string
		letters    []spec
		filter     Filter
		replayed   []string          // names, in the order read
		superseded map[string]string // name → the newer letter replayed instead
		unreadable []string
	}{
		{name: "no filter: every letter, one per key",
			letters:  []spec{{"a1", user, "a", "rejected", 1}, {"b1", user, "b", "rejected", 1}, {"a2", user, "a", "rejected", 2}},
			replayed: []string{"b1", "a2"}, superseded: map[string]string{"a1": "a2"}},
		{name: "equal times: the one read last wins",
			letters:  []spec{{"a1", user, "a", "rejected", 5}, {"a2", user, "a", "invalid-json", 5}},
			replayed: []string{"a2"}, superseded: map[string]string{"a1": "a2"}},
		{name: "an older letter read later does not win",
			letters:  []spec{{"new", user, "a", "rejected", 9}, {"old", user, "a", "rejected", 3}},
			replayed: []string{"new"}, superseded: map[string]string{"old": "new"}},
		{name: "three letters of a key: both older ones point at the newest",
			letters:  []spec{{"a1", user, "a", "rejected", 1}, {"a3", user, "a", "rejected", 3}, {"a2", user, "a", "rejected", 2}},
			replayed: []string{"a3"}, superseded: map[string]string{"a1": "a3", "a2": "a3"}},
		{name: "one key in two origin topics is two records",
			letters:  []spec{{"user-a", user, "a", "rejected", 1}, {"org-a", org, "a", "rejected", 2}},
			replayed: []string{"user-a", "org-a"}},
		{name: "the topic filter",
			letters:  []spec{{"user-a", user, "a", "rejected", 1}, {"org-b", org, "b", "rejected", 1}, {"user-c", user, "c", "rejected", 1}},
			filter:   Filter{Topic: user},
			replayed: []string{"user-a", "user-c"}},
		{name: "the class filter",
			letters:  []spec{{"a", user, "a", "rejected", 1}, {"b", user, "b", "invalid-key", 1}, {"c", user, "c", "rejected", 1}},
			filter:   Filter{Class: "invalid-key"},
			replayed: []string{"b"}},
		{name: "since is inclusive, until exclusive",
			letters:  []spec{{"m1", user, "a", "rejected", 1}, {"m2", user, "b", "rejected", 2}, {"m3", user, "c", "rejected", 3}, {"m4", user, "d", "rejected", 4}},
			filter:   Filter{Since: t0.Add(2 * time.Minute), Until: t0.Add(4 * time.Minute)},
			replayed: []string{"m2", "m3"}},
		{name: "since alone",
			letters:  []spec{{"m1", user, "a", "rejected", 1}, {"m5", user, "b", "rejected", 5}},
			filter:   Filter{Since: t0.Add(3 * time.Minute)},
			replayed: []string{"m5"}},
		{name: "until alone",
			letters:  []spec{{"m1", user, "a", "rejected", 1}, {"m5", user, "b", "rejected", 5}},
			filter:   Filter{Until: t0.Add(3 * time.Minute)},
			replayed: []string{"m1"}},
		{name: "a newer letter the filter leaves out supersedes nothing",
			letters:  []spec{{"old", user, "a", "rejected", 1}, {"new", user, "a", "invalid-json", 2}},
			filter:   Filter{Class: "rejected"},
			replayed: []string{"old"}},
		{name: "every filter at once",
			letters: []spec{{"hit", user, "a", "rejected", 2}, {"other-topic", org, "a", "rejected", 2}, {"other-class", user, "b", "too-large", 2},
				{"too-early", user, "c", "rejected", 0}, {"too-late", user, "d", "rejected", 9}},
			filter:   Filter{Topic: user, Class: "rejected", Since: t0.Add(time.Minute), Until: t0.Add(5 * time.Minute)},
			replayed: []string{"hit"}},
		{name: "unreadable messages are reported and match nothing",
			letters:    []spec{{"bad", "", "a", "unreadable", 0}, {"a", user, "a", "rejected", 1}},
			replayed:   []string{"a"},
			unreadable: []string{"bad"}},
		{name: "an empty topic",
			letters: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msgs := topicOf(tc.letters)
			name := func(m record.Message) string { return tc.letters[m.Offset].name }
			s := Select(msgs, tc.filter)
			var replayed []string
			superseded := map[string]string{}
			for _, c := range s.Matched {
				if c.Letter.Topic != tc.letters[c.Msg.Offset].topic || string(c.Letter.Key) != tc.letters[c.Msg.Offset].key {
					t.Errorf("%s parsed as %s key %q", name(c.Msg), c.Letter.Topic, c.Letter.Key)
				}
				if c.SupersededBy == nil {
					replayed = append(replayed, name(c.Msg))
				} else {
					superseded[name(c.Msg)] = name(*c.SupersededBy)
				}
			}
			if !slices.Equal(replayed, tc.replayed) {
				t.Errorf("replayed %q, want %q", replayed, tc.replayed)
			}
			if len(superseded) != len(tc.superseded) {
				t.Errorf("superseded %v, want %v", superseded, tc.superseded)
			}
			for old, newer := range tc.superseded {
				if superseded[old] != newer {
					t.Errorf("%s superseded by %q, want %q", old, superseded[old], newer)
				}
			}
			var unreadable []string
			for _, u := range s.Unreadable {
				if u.Err == nil {
					t.Errorf("%s unreadable without an error", name(u.Msg))
				}
				unreadable = append(unreadable, name(u.Msg))
			}
			if !slices.Equal(unreadable, tc.unreadable) {
				t.Errorf("unreadable %q, want %q", unreadable, tc.unreadable)
			}
		})
	}
}
