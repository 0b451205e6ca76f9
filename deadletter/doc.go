// Package deadletter owns statesync's dead letters (docs/design.md "Dead
// letters"): the letter's format (Encode, Parse: the Codr IDeadLetterMessage
// shape), publishing letters (Publisher, which also says when records wait
// for a dead-letter topic that does not acknowledge), reading the topic back
// (ReadTopic) and choosing what a replay sends (Filter, Select: the newest
// matching letter of each key).
//
// Retrying a publish until it is acknowledged is the caller's: sink.Applier
// retries with the backoff of its writes and gives up only when its batch is
// abandoned, and sink knows nothing of Kafka.
package deadletter
