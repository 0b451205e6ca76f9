// PerfTwice: Kafka's own consumer perf test (org.apache.kafka.tools.ConsumerPerformance) run twice
// in one JVM: a warm-up pass (group <group>-warmup, at most 200,000 records) and then the measured
// pass with the arguments as given. A cold JVM interprets the consumer's code for the first
// seconds, and on a 100k-record topic that, not Kafka, decided the rate (5.8k records/s cold against
// ~46k/s for librdkafka): the bench's ceiling is the Java consumer as a long-running one runs,
// JIT-compiled. bench/run parses the last CSV line, the measured pass's.
//
//   java -cp "$KAFKA_JARS/*" bench/java/PerfTwice.java --bootstrap-server B --topic T --messages N --group G ...
public class PerfTwice {
	public static void main(String[] args) throws Exception {
		String[] warm = args.clone();
		for (int i = 0; i + 1 < warm.length; i++) {
			if (warm[i].equals("--group")) {
				warm[i + 1] = warm[i + 1] + "-warmup";
			} else if (warm[i].equals("--messages")) {
				warm[i + 1] = Long.toString(Math.min(Long.parseLong(warm[i + 1]), 200000L));
			}
		}
		System.out.println("# warm-up pass");
		org.apache.kafka.tools.ConsumerPerformance.main(warm);
		System.out.println("# measured pass");
		org.apache.kafka.tools.ConsumerPerformance.main(args);
	}
}
