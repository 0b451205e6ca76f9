// Package deadletter owns statesync's dead letters (docs/design.md "Dead
// letters"): the letter's format (Encode, Parse: the Codr IDeadLetterMessage
// shape).
package deadletter
