package main

import (
	"time"

	"go.uber.org/zap"
)

// closer undoes one step of building the pipeline.
type closer struct {
	name  string // what it closes: "closing <name>", "closed <name>"
	close func() error
}

// closers are the steps a build has taken so far, in build order: a build
// that fails halfway closes only what it built.
type closers []closer

func (cs *closers) add(name string, close func() error) {
	*cs = append(*cs, closer{name: name, close: close})
}

// without is the list minus the closer named name, for a part whose
// closing something else has taken over.
func (cs closers) without(name string) closers {
	var out closers
	for _, c := range cs {
		if c.name != name {
			out = append(out, c)
		}
	}
	return out
}

// closeAll runs the closers in reverse build order, each logged with how
// long it took; one that fails is logged and the rest still run.
func (cs closers) closeAll(log *zap.Logger) {
	for i := len(cs) - 1; i >= 0; i-- {
		c := cs[i]
		log.Info("closing " + c.name)
		start := time.Now()
		if err := c.close(); err != nil {
			log.Warn("close "+c.name, zap.Duration("took", time.Since(start)), zap.Error(err))
			continue
		}
		log.Info("closed "+c.name, zap.Duration("took", time.Since(start)))
	}
}
