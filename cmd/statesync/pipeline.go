package main

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.uber.org/zap"

	"github.com/codr/statesync/batch"
	"github.com/codr/statesync/config"
	"github.com/codr/statesync/deadletter"
	"github.com/codr/statesync/metrics"
	"github.com/codr/statesync/offsets"
	"github.com/codr/statesync/record"
	"github.com/codr/statesync/sink"
	"github.com/codr/statesync/statelog"
)

// syncTopics is the pipeline: consumer → decode → batch → applier (MongoDB
// + dead letters) → stored offsets. Its parts are built in dependency order
// and closed in reverse, also when the build stopped halfway.
func syncTopics(ctx context.Context, e *env, importMode bool) (summaryView, error) {
	log := e.logger()
	defer log.Sync() //nolint:errcheck // best effort on exit
	log.Info("starting statesync", append(buildFields(), zap.Bool("import", importMode),
		zap.String("topics", e.cfg.Topics), zap.String("database", e.cfg.MongoDatabase))...)
	p := newSyncPipeline(e, importMode)
	defer p.close()
	if err := p.build(ctx); err != nil {
		return summaryView{}, err
	}
	return p.run(ctx, e)
}

// syncPipeline holds the parts syncTopics builds and, in closers, what
// undoes each step of the build taken so far.
type syncPipeline struct {
	cfg        config.Config
	importMode bool
	log        *zap.Logger
	reg        *prometheus.Registry
	metrics    *metrics.Metrics
	kafka      offsets.Logging // its Brokers condition is shared by the Kafka clients
	health     *health
	db         *sink.Sink
	producer   *offsets.OnDemandProducer // the dead letters'
	consumer   *offsets.Consumer
	sum        summary
	closers    closers
}

// newSyncPipeline holds what the parts share: the logger, the metrics and
// readiness (which the HTTP server reports from the start).
func newSyncPipeline(e *env, importMode bool) *syncPipeline {
	p := &syncPipeline{cfg: e.cfg, importMode: importMode, log: e.logger(), reg: prometheus.NewRegistry()}
	p.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	p.metrics = metrics.New(p.reg)
	metrics.RegisterBuildInfo(p.reg, build())
	p.kafka = e.kafkaLogging()
	p.kafka.Brokers.OnChange = func(up bool) { p.metrics.KafkaUp.Set(b2f(up)) }
	p.health = newHealth(p.cfg, p.metrics)
	return p
}

// build starts the parts in dependency order, each adding its closer:
// the HTTP server (/readyz answers from the start: not ready until MongoDB
// and the brokers answer and the group is joined), the MongoDB client
// (import: MongoDB must answer now), the dead-letter producer, the
// consumer, the MongoDB ping.
func (p *syncPipeline) build(ctx context.Context) error {
	if err := p.serveHTTP(); err != nil {
		return err
	}
	if err := p.connectMongo(ctx); err != nil {
		return err
	}
	if err := p.openDeadLetters(); err != nil {
		return err
	}
	if err := p.openConsumer(); err != nil {
		return err
	}
	p.watchMongo()
	return nil
}

// close closes what build built, in reverse order.
func (p *syncPipeline) close() { p.closers.closeAll(p.log) }

func (p *syncPipeline) serveHTTP() error {
	if p.cfg.HTTPAddr == "" {
		return nil
	}
	srv, err := serveHTTP(p.cfg.HTTPAddr, p.reg, p.health, p.log)
	if err != nil {
		return err
	}
	p.closers.add("HTTP server", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return srv.Shutdown(ctx)
	})
	return nil
}

func (p *syncPipeline) connectMongo(ctx context.Context) error {
	db, err := connectSink(p.cfg)
	if err != nil {
		return err
	}
	p.db = db
	p.closers.add("MongoDB client", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return db.Close(ctx)
	})
	if p.importMode {
		// import ends: MongoDB must answer now, not after the records are read
		return checkMongo(ctx, db, p.cfg, mongoAddresses(p.cfg.MongoURI))
	}
	return nil
}

func (p *syncPipeline) openDeadLetters() error {
	producer := &offsets.OnDemandProducer{Props: p.cfg.KafkaConfig(), Role: "dlt-producer", Logging: p.kafka,
		IdleClose: deadLetterIdleClose}
	if err := producer.Start(); err != nil {
		return err
	}
	p.producer = producer
	p.closers.add("dead-letter producer", func() error {
		producer.Close(5 * time.Second)
		return nil
	})
	return nil
}

// deadLetterIdleClose: the dead-letter producer is closed after this long
// without a dead letter (an idle producer costs CPU: offsets.OnDemandProducer)
// and made again by the next one.
const deadLetterIdleClose = 30 * time.Second

// openConsumer builds the consumer and what it writes with: the applier
// (MongoDB, dead letters), counted into sum.
func (p *syncPipeline) openConsumer() error {
	cfg := p.cfg
	dlt := &deadletter.Publisher{P: p.producer, Topic: cfg.DLTTopic, Log: p.log, Metrics: p.metrics,
		StaleAfter: 2*cfg.RetryMaxBackoff + time.Minute} // the applier retries a failed dead letter at least this often
	p.health.setDeadLetters(dlt.Blocked)
	applier := sink.NewApplier(p.db, dlt, sink.ApplyOptions{
		Collection:      cfg.Collection,
		MaxBackoff:      cfg.RetryMaxBackoff,
		UnwritableAfter: cfg.UnwritableAfter,
		Log:             p.log,
		Metrics:         p.metrics,
		Health:          p.health.setMongo,
	})
	writer := writerFunc(func(ctx context.Context, b *batch.Batch) error {
		out, err := applier.Apply(ctx, b)
		p.sum.add(out, b)
		return err
	})
	sel, _ := cfg.TopicSelection() // validated by config
	consumer, err := offsets.New(offsets.Options{
		Kafka: cfg.KafkaConfig(), GroupID: cfg.KafkaGroupID, Subscription: sel.Subscription(),
		RefreshInterval: cfg.TopicRefreshInterval,
		Batch:           batch.Options{MaxDocs: cfg.BatchMaxDocs, MaxBytes: cfg.BatchMaxBytes, MaxWait: cfg.BatchMaxWait, StaleGuard: cfg.StaleGuard},
		Concurrency:     cfg.WriteConcurrency,
		Decode:          record.DecodeOptions{},
		ShutdownGrace:   cfg.ShutdownGrace,
		StopAtEnd:       p.importMode,
		Exclude:         []string{cfg.DLTTopic}, // never consume our own dead letters, whatever the regex matches
		FutureSkew:      cfg.FutureSkew,
		Log:             p.log,
		Brokers:         p.kafka.Brokers,
		Metrics:         p.metrics,
	}, writer)
	if err != nil {
		return err
	}
	p.consumer = consumer
	p.closers.add("consumer", func() error { return consumer.Close(5 * time.Second) })
	p.health.status.Store(consumer.Status())
	return nil
}

// watchMongo starts the MongoDB ping behind readiness and statesync_mongo_up.
func (p *syncPipeline) watchMongo() {
	hosts := mongoAddresses(p.cfg.MongoURI)
	cond := &statelog.Condition{Log: p.log, Fields: []zap.Field{zap.String("hosts", hosts)},
		Failing:   "MongoDB unreachable (" + hosts + "); writes wait and are retried, nothing is skipped",
		Recovered: "MongoDB reachable again (" + hosts + ")"}
	ctx, stop := context.WithCancel(context.Background())
	go p.health.watchMongo(ctx, explainingPinger{p.db, p.cfg, hosts}, cond)
	p.closers.add("MongoDB ping", func() error { stop(); return nil })
}

// run is the start check for the brokers and the dead-letter topic, then
// the consumer until ctx ends (import: until the end offsets are reached).
func (p *syncPipeline) run(ctx context.Context, e *env) (summaryView, error) {
	if err := checkKafka(ctx, p.consumer, p.cfg, p.importMode, p.health, p.kafka.Brokers); err != nil {
		if errors.Is(err, errStopped) {
			p.log.Info("stopped before the brokers answered")
			return summaryView{}, nil
		}
		return summaryView{}, err
	}
	p.closers = p.closers.without("consumer") // Run drains and closes it, within the shutdown grace
	var stopProgress func()
	if p.importMode {
		stopProgress = startProgress(e, p.consumer.Status(), &p.sum, p.log)
	}
	p.sum.start = time.Now()
	err := p.consumer.Run(ctx)
	p.sum.elapsed = time.Since(p.sum.start)
	if stopProgress != nil {
		stopProgress()
	}
	if err != nil {
		p.log.Error("consumer stopped with an error", zap.Error(err))
		return p.sum.snapshot(), err
	}
	p.log.Info("stopped cleanly", zap.Int64("written", p.sum.written.Load()), zap.Int64("dead_lettered", p.sum.deadLettered.Load()))
	view := p.sum.snapshot()
	if p.importMode {
		view.Documents = p.countDocuments()
	}
	return view, nil
}

// countDocuments is each synced collection's document count, for import's
// summary; a count that fails is logged and left out.
func (p *syncPipeline) countDocuments() map[string]int64 {
	counts := map[string]int64{}
	for _, topic := range p.sum.topicNames() {
		coll := p.cfg.Collection(topic)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		n, err := p.db.Client().Database(p.cfg.MongoDatabase).Collection(coll).CountDocuments(ctx, bson.D{})
		cancel()
		if err != nil {
			p.log.Warn("count documents", zap.String("collection", coll), zap.Error(err))
			continue
		}
		counts[coll] = n
	}
	return counts
}
