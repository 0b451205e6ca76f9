package deadletter

import (
	"time"

	"github.com/codr/statesync/record"
)

// Filter chooses the dead letters a replay considers. A zero field matches
// every letter.
type Filter struct {
	Topic string    // origin topic
	Class string    // error.class
	Since time.Time // written (error.at) at or after
	Until time.Time // written before
}

// Match reports whether f lets l through.
func (f Filter) Match(l Letter) bool {
	return (f.Topic == "" || l.Topic == f.Topic) && (f.Class == "" || l.Class == f.Class) &&
		(f.Since.IsZero() || !l.At.Before(f.Since)) && (f.Until.IsZero() || l.At.Before(f.Until))
}

// Candidate is a dead letter a Filter matched.
type Candidate struct {
	Msg    record.Message // the dead letter as read from its topic
	Letter Letter
	// SupersededBy is the newer matching dead letter of the same origin
	// topic and key, replayed instead of this one; nil when this one is
	// the newest, and replayed.
	SupersededBy *record.Message
}

// Unreadable is a message of the dead-letter topic that Parse refuses.
type Unreadable struct {
	Msg record.Message
	Err error
}

// Selection is what a replay does with the messages of a dead-letter topic.
type Selection struct {
	Matched    []Candidate // in the order read; those not superseded are replayed
	Unreadable []Unreadable
}

// Select parses msgs (as ReadTopic returns them) and keeps the letters f
// matches. Of several matching letters of one origin topic and key only
// the newest (by error.at; of equal ones the last read) is replayed: a state
// topic keeps only the last record of a key, and a replayed record that
// fails again is dead-lettered anew, so a second replay over the same window
// would otherwise send it twice, and an older state after a newer one.
// Letters f leaves out supersede nothing.
func Select(msgs []record.Message, f Filter) Selection {
	var s Selection
	type originKey struct{ topic, key string }
	newest := map[originKey]int{} // index in s.Matched
	for _, m := range msgs {
		l, err := Parse(m.Key, m.Value, m.Headers)
		if err != nil {
			s.Unreadable = append(s.Unreadable, Unreadable{Msg: m, Err: err})
			continue
		}
		if !f.Match(l) {
			continue
		}
		s.Matched = append(s.Matched, Candidate{Msg: m, Letter: l})
		k := originKey{l.Topic, string(l.Key)}
		if i, ok := newest[k]; !ok || !l.At.Before(s.Matched[i].Letter.At) {
			newest[k] = len(s.Matched) - 1
		}
	}
	for i := range s.Matched {
		c := &s.Matched[i]
		if j := newest[originKey{c.Letter.Topic, string(c.Letter.Key)}]; j != i {
			newer := s.Matched[j].Msg
			c.SupersededBy = &newer
		}
	}
	return s
}
