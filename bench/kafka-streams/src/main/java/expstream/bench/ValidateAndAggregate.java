package expstream.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Iterator;
import java.util.Map;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.processor.PunctuationType;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.KeyValueStore;

/**
 * The whole job in one processor, on one task per partition of the co-partitioned raw topics
 * (both are keyed by user id): decode and validate as ingest does, then apply the event to the
 * user's state in the "users" store and the task's per-variant sums in the "variant-totals"
 * store, by the aggregator's rules (services/aggregate/applyEvent.ts): the first exposure fixes
 * the user's variant, a later exposure to another variant marks a conflict; a metric event
 * counts for each experiment the user is assigned to that defines the metric, inside
 * [exposure, exposure + attribution window]; for a sum metric the user's x moves to x+v (Σx += v,
 * Σx² += (x+v)² − x²), a conversion goes 0 → 1 once; the user's last few metric events are kept
 * (within a grace period of the user's newest event time) and counted when a first exposure
 * arrives after them. Both stores are RocksDB with Kafka Streams' record cache and changelog,
 * so state, output and offsets commit together (exactly_once_v2).
 *
 * Every second, if anything changed, the task forwards its sums (with how many records it has
 * processed and rejected, and when it processed its first and last record) as one JSON record
 * keyed by task; the bench reads the latest per task and adds them up.
 */
final class ValidateAndAggregate implements Processor<byte[], byte[], String, String> {
  static final String USERS = "users";
  static final String TOTALS = "variant-totals";
  private static final String PROCESSED = "\u0001processed";
  private static final String REJECTED = "\u0001rejected\u0000";

  private final JobConfig config;
  private final RawDecoder decoder;
  private final ObjectMapper json = new ObjectMapper();
  private ProcessorContext<String, String> context;
  private KeyValueStore<String, byte[]> users;
  private KeyValueStore<String, byte[]> totals;
  private boolean dirty = true;
  private long firstProcessedAt;
  private long lastProcessedAt;

  ValidateAndAggregate(JobConfig config) {
    this.config = config;
    try {
      this.decoder = new RawDecoder(config);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  @Override
  public void init(ProcessorContext<String, String> context) {
    this.context = context;
    this.users = context.getStateStore(USERS);
    this.totals = context.getStateStore(TOTALS);
    context.schedule(Duration.ofSeconds(1), PunctuationType.WALL_CLOCK_TIME, now -> emitTotals());
  }

  @Override
  public void process(Record<byte[], byte[]> record) {
    long now = System.currentTimeMillis();
    if (firstProcessedAt == 0) firstProcessedAt = now;
    String topic = context.recordMetadata().orElseThrow().topic();
    add(PROCESSED, 0, 1, 0, 0, 0, 0);
    try {
      RawEvent event = decoder.decode(topic, record.value(), now);
      byte[] stored = users.get(event.userId());
      UserState state = UserState.decode(stored);
      apply(state, event);
      users.put(event.userId(), state.encode());
    } catch (RawDecoder.Rejected rejected) {
      add(REJECTED + rejected.reason, 0, 1, 0, 0, 0, 0);
    }
    dirty = true;
    lastProcessedAt = System.currentTimeMillis();
  }

  private void apply(UserState state, RawEvent event) {
    if (event.eventTime() > state.newest) {
      state.newest = event.eventTime();
      long oldest = state.newest - config.earlyGraceMs;
      state.early.removeIf(m -> m.eventTime() < oldest);
    }
    if (event.isExposure()) {
      applyExposure(state, event);
      return;
    }
    for (Map.Entry<String, UserState.Assignment> a : state.assignments.entrySet()) {
      JobConfig.Experiment experiment = config.experiments.get(a.getKey());
      if (experiment != null && experiment.metrics().containsKey(event.metric())) countMetric(state, experiment, a.getValue(), event.metric(), event.value(), event.eventTime());
    }
    if (config.earlyKept > 0 && event.eventTime() >= state.newest - config.earlyGraceMs && config.experimentMetrics.contains(event.metric())) {
      state.early.add(new UserState.Early(event.metric(), event.value(), event.eventTime()));
      if (state.early.size() > config.earlyKept) state.early.remove(0);
    }
  }

  private void applyExposure(UserState state, RawEvent event) {
    JobConfig.Experiment experiment = config.experiments.get(event.experimentId());
    UserState.Assignment existing = state.assignments.get(event.experimentId());
    if (existing == null) {
      UserState.Assignment assignment = new UserState.Assignment(event.variantId(), event.eventTime(), false);
      state.assignments.put(event.experimentId(), assignment);
      add(key(event.experimentId(), event.variantId(), ""), 1, 0, 0, 0, 0, 0);
      for (UserState.Early m : state.early) countMetric(state, experiment, assignment, m.metric(), m.value(), m.eventTime());
      return;
    }
    if (existing.variant.equals(event.variantId()) || existing.conflicted) return;
    existing.conflicted = true;
    add(key(event.experimentId(), existing.variant, ""), 0, 1, 0, 0, 0, 0);
  }

  private void countMetric(UserState state, JobConfig.Experiment experiment, UserState.Assignment assignment, String metricName, double value, long eventTime) {
    JobConfig.Metric metric = experiment.metrics().get(metricName);
    if (metric == null) return;
    if (eventTime < assignment.exposedAt || eventTime > assignment.exposedAt + experiment.attributionWindowMs()) return;
    String totalKey = experiment.id() + "\u0000" + metricName;
    double before = state.totals.getOrDefault(totalKey, 0.0);
    double after = metric.conversion() ? 1 : before + value;
    if (!Double.isFinite(after * after)) return;
    state.totals.put(totalKey, after);
    add(key(experiment.id(), assignment.variant, metricName), 0, 0, metric.conversion() ? after - before : value, after * after - before * before, metric.conversion() && before == 0 ? 1 : 0, 1);
  }

  private static String key(String experimentId, String variantId, String metric) {
    return experimentId + "\u0000" + variantId + "\u0000" + metric;
  }

  /** Adds to one entry of the task's sums: [users, conflicts (or a count), Σx, Σx², conversions, events]. */
  private void add(String key, long users, long count, double sum, double sumSquares, long conversions, long events) {
    byte[] stored = totals.get(key);
    ByteBuffer b = stored == null ? ByteBuffer.allocate(48) : ByteBuffer.wrap(stored);
    ByteBuffer next = ByteBuffer.allocate(48);
    next.putLong(b.getLong(0) + users).putLong(b.getLong(8) + count).putDouble(b.getDouble(16) + sum).putDouble(b.getDouble(24) + sumSquares).putLong(b.getLong(32) + conversions).putLong(b.getLong(40) + events);
    totals.put(key, next.array());
  }

  private void emitTotals() {
    if (!dirty) return;
    dirty = false;
    ObjectNode out = json.createObjectNode();
    out.put("task", context.taskId().toString());
    out.put("firstProcessedAt", firstProcessedAt);
    out.put("lastProcessedAt", lastProcessedAt);
    ObjectNode rejected = out.putObject("rejected");
    ArrayNode rows = out.putArray("totals");
    try (KeyValueIterator<String, byte[]> all = totals.all()) {
      for (Iterator<KeyValue<String, byte[]>> it = all; it.hasNext(); ) {
        KeyValue<String, byte[]> entry = it.next();
        ByteBuffer b = ByteBuffer.wrap(entry.value);
        if (entry.key.equals(PROCESSED)) out.put("processed", b.getLong(8));
        else if (entry.key.startsWith(REJECTED)) rejected.put(entry.key.substring(REJECTED.length()), b.getLong(8));
        else {
          String[] parts = entry.key.split("\u0000", -1);
          ObjectNode row = rows.addObject();
          row.put("experimentId", parts[0]).put("variantId", parts[1]).put("metric", parts[2]);
          row.put("users", b.getLong(0)).put("conflicts", b.getLong(8)).put("sum", b.getDouble(16)).put("sumSquares", b.getDouble(24)).put("conversions", b.getLong(32)).put("events", b.getLong(40));
        }
      }
    }
    context.forward(new Record<>(context.taskId().toString(), out.toString(), System.currentTimeMillis()));
  }
}
