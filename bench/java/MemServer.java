// A MongoDB-wire server keeping everything in memory (de.bwaldvogel:mongo-java-server with its
// memory backend), for bench/run: a database fast enough that the consumers' own costs show.
// Not durable, not a replica set. Usage: java -cp 'jars/*' MemServer.java PORT
//
// mongo-java-server's newest ServerVersion (MONGO_5_0) reports wire version 8, and the Go driver
// v2 refuses servers below 9 (MongoDB 4.4): it announces 5.0.0 with wire version 13 instead. The
// commands both benchmarked tools send (insert/update/delete/find/count, OP_MSG) are unchanged.
import java.util.List;

import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.MongoVersion;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;

public class MemServer {
    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[0]);
        MongoVersion v50 = new MongoVersion() {
            public List<Integer> getVersionArray() { return List.of(5, 0, 0); }
            public int getWireVersion() { return 13; }
        };
        MongoServer server = new MongoServer(new MemoryBackend().version(v50));
        server.bind("127.0.0.1", port);
        System.out.println("mongo-java-server (memory backend) listening on 127.0.0.1:" + port);
        Runtime.getRuntime().addShutdownHook(new Thread(server::shutdownNow));
        Thread.currentThread().join();
    }
}
