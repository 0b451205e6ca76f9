package com.codr.statesync.bench;

import org.apache.kafka.connect.sink.SinkRecord;
import org.bson.BsonDocument;
import org.bson.BsonValue;

import com.mongodb.kafka.connect.sink.MongoSinkTopicConfig;
import com.mongodb.kafka.connect.sink.converter.SinkDocument;
import com.mongodb.kafka.connect.sink.processor.PostProcessor;

/**
 * Post processor for the MongoDB Kafka sink connector (bench/run): a Codr state record's value is
 * {"payload": {...entity...}} in extended JSON; the document to write is the payload. With the
 * StringConverter the connector parses the value with BsonDocument.parse, so $oid, $date and
 * $numberLong keep their BSON types. Put first in post.processor.chain, before DocumentIdAdder,
 * so ProvidedInValueStrategy finds the payload's _id.
 */
public class PayloadUnwrapper extends PostProcessor {
    public PayloadUnwrapper(final MongoSinkTopicConfig config) {
        super(config);
    }

    @Override
    public void process(final SinkDocument doc, final SinkRecord orig) {
        doc.getValueDoc().ifPresent(v -> {
            BsonValue p = v.get("payload");
            if (p == null || !p.isDocument()) {
                return;
            }
            BsonDocument payload = p.asDocument();
            v.clear();
            v.putAll(payload);
        });
    }
}
