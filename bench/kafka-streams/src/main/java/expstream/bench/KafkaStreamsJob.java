package expstream.bench;

import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.state.Stores;

/**
 * `java -Xmx512m -cp target/classes:target/lib/* expstream.bench.KafkaStreamsJob job.json`:
 * the pipeline's ingest + aggregate job as one Kafka Streams application (exactly_once_v2,
 * RocksDB stores, one stream thread), for the bench's comparison. Prints "RUNNING" when the
 * application reaches that state; SIGTERM closes it cleanly.
 */
public final class KafkaStreamsJob {
  public static void main(String[] args) throws Exception {
    if (args.length != 1) {
      System.err.println("usage: KafkaStreamsJob <job.json>");
      System.exit(2);
    }
    JobConfig config = JobConfig.read(args[0]);
    Topology topology = new Topology();
    topology.addSource("exposures", new ByteArrayDeserializer(), new ByteArrayDeserializer(), config.exposuresTopic);
    topology.addSource("metrics", new ByteArrayDeserializer(), new ByteArrayDeserializer(), config.metricsTopic);
    topology.addProcessor("validate-and-aggregate", () -> new ValidateAndAggregate(config), "exposures", "metrics");
    topology.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(ValidateAndAggregate.USERS), Serdes.String(), Serdes.ByteArray()).withCachingEnabled(), "validate-and-aggregate");
    topology.addStateStore(Stores.keyValueStoreBuilder(Stores.persistentKeyValueStore(ValidateAndAggregate.TOTALS), Serdes.String(), Serdes.ByteArray()).withCachingEnabled(), "validate-and-aggregate");
    topology.addSink("totals", config.totalsTopic, new StringSerializer(), new StringSerializer(), "validate-and-aggregate");

    Properties props = new Properties();
    props.put(StreamsConfig.APPLICATION_ID_CONFIG, config.applicationId);
    props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, config.bootstrapServers);
    props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
    props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
    props.put(StreamsConfig.STATE_DIR_CONFIG, config.stateDir);
    props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
    props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");

    KafkaStreams streams = new KafkaStreams(topology, props);
    CountDownLatch closed = new CountDownLatch(1);
    streams.setStateListener((now, before) -> {
      System.out.println("STATE " + now);
      if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) closed.countDown();
    });
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      streams.close();
      closed.countDown();
    }));
    streams.start();
    closed.await();
    System.exit(streams.state() == KafkaStreams.State.ERROR ? 1 : 0);
  }
}
