// Package deadletter owns statesync's dead letters (docs/design.md "Dead
// letters"): the letter's format (Encode, Parse: the Codr IDeadLetterMessage
// shape), publishing letters (Publisher, which also says when records wait
// for a dead-letter topic that does not acknowledge) and reading the topic
// back (ReadTopic).
package deadletter
