package expstream.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.EOFException;
import java.io.File;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import org.apache.avro.AvroTypeException;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;

/**
 * The ingest service's decoding and validation (services/ingest/recordDecoder.ts and
 * validateEvent.ts) for this job: Confluent wire format (magic byte 0, 4-byte schema id, Avro
 * body), the writer schema fetched from the registry by id (cached; the id must be registered
 * under the topic's value subject), read with the repository's own reader schema
 * (schemas/*.avsc) through Avro resolution, then the ingest rules: ids present and not too
 * long, event time within the allowed skew and age, metric values finite and within the
 * limit, exposures of defined experiments and variants. Not modelled: the experiments'
 * lifecycle on exp.state (the bench starts every experiment before producing).
 * Returns the event, or throws Rejected with ingest's reason code.
 */
final class RawDecoder {
  static final class Rejected extends Exception {
    final String reason;

    Rejected(String reason) {
      super(reason, null, false, false);
      this.reason = reason;
    }
  }

  private record Writer(Schema schema, Set<String> subjects) {}

  private final JobConfig config;
  private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
  private final ObjectMapper json = new ObjectMapper();
  private final Schema exposureReader;
  private final Schema metricReader;
  private final Map<Integer, Writer> writers = new HashMap<>();
  private final Map<String, GenericDatumReader<GenericRecord>> readers = new HashMap<>();
  private BinaryDecoder decoder;

  RawDecoder(JobConfig config) throws IOException {
    this.config = config;
    exposureReader = new Schema.Parser().parse(new File(config.schemasDir, "ExposureEvent.avsc"));
    metricReader = new Schema.Parser().parse(new File(config.schemasDir, "MetricEvent.avsc"));
  }

  RawEvent decode(String topic, byte[] payload, long now) throws Rejected {
    if (payload == null || payload.length == 0) throw new Rejected("EMPTY_PAYLOAD");
    if (payload.length > config.maxPayloadBytes) throw new Rejected("PAYLOAD_TOO_LARGE");
    if (payload.length < 5) throw new Rejected("TOO_SHORT");
    if (payload[0] != 0) throw new Rejected("BAD_MAGIC_BYTE");
    int id = ((payload[1] & 0xff) << 24) | ((payload[2] & 0xff) << 16) | ((payload[3] & 0xff) << 8) | (payload[4] & 0xff);
    Writer writer = writer(id);
    if (writer == null) throw new Rejected("UNKNOWN_SCHEMA_ID");
    if (!writer.subjects.contains(topic + "-value")) throw new Rejected("SCHEMA_NOT_FOR_TOPIC");
    boolean exposure = topic.equals(config.exposuresTopic);
    GenericRecord record = read(topic + "\u0000" + id, writer.schema, exposure ? exposureReader : metricReader, payload);
    return exposure ? validExposure(record, now) : validMetric(record, now);
  }

  private GenericRecord read(String readerKey, Schema writer, Schema reader, byte[] payload) throws Rejected {
    GenericDatumReader<GenericRecord> datumReader = readers.computeIfAbsent(readerKey, k -> new GenericDatumReader<>(writer, reader));
    decoder = DecoderFactory.get().binaryDecoder(payload, 5, payload.length - 5, decoder);
    GenericRecord record;
    try {
      record = datumReader.read(null, decoder);
    } catch (EOFException e) {
      throw new Rejected("TRUNCATED_BODY");
    } catch (IOException | AvroTypeException | IndexOutOfBoundsException | NegativeArraySizeException e) {
      throw new Rejected("UNDECODABLE_BODY");
    } catch (RuntimeException e) {
      throw new Rejected("SCHEMA_NOT_READABLE");
    }
    try {
      if (!decoder.isEnd()) throw new Rejected("TRAILING_BYTES");
    } catch (IOException e) {
      throw new Rejected("UNDECODABLE_BODY");
    }
    return record;
  }

  private RawEvent validExposure(GenericRecord r, long now) throws Rejected {
    String eventId = text(r, "eventId"), experimentId = text(r, "experimentId"), variantId = text(r, "variantId"), userId = text(r, "userId");
    checkIds(eventId, experimentId, variantId, userId);
    long eventTime = (Long) r.get("eventTime");
    checkTime(eventTime, now);
    JobConfig.Experiment experiment = config.experiments.get(experimentId);
    if (experiment == null) throw new Rejected("UNKNOWN_EXPERIMENT");
    if (!experiment.variants().contains(variantId)) throw new Rejected("UNKNOWN_VARIANT");
    return new RawEvent(userId, experimentId, variantId, null, 0, eventTime);
  }

  private RawEvent validMetric(GenericRecord r, long now) throws Rejected {
    String eventId = text(r, "eventId"), userId = text(r, "userId"), metric = text(r, "metric");
    checkIds(eventId, userId, metric);
    double value = (Double) r.get("value");
    if (!Double.isFinite(value)) throw new Rejected("NON_FINITE_VALUE");
    if (Math.abs(value) > config.maxAbsMetricValue) throw new Rejected("VALUE_OUT_OF_RANGE");
    long eventTime = (Long) r.get("eventTime");
    checkTime(eventTime, now);
    return new RawEvent(userId, null, null, metric, value, eventTime);
  }

  private static String text(GenericRecord r, String field) {
    return r.get(field).toString();
  }

  private void checkIds(String... ids) throws Rejected {
    for (String id : ids) {
      if (id.strip().isEmpty()) throw new Rejected("EMPTY_ID");
      if (id.length() > config.maxIdLength) throw new Rejected("FIELD_TOO_LONG");
    }
  }

  private void checkTime(long eventTime, long now) throws Rejected {
    if (eventTime > now + config.maxFutureSkewMs) throw new Rejected("EVENT_TIME_IN_FUTURE");
    if (eventTime < now - config.maxEventAgeMs) throw new Rejected("EVENT_TIME_TOO_OLD");
  }

  /** The writer schema of an id and the subjects it is registered under; null if the registry does not know it. Outages are retried. */
  private Writer writer(int id) {
    Writer cached = writers.get(id);
    if (cached != null) return cached;
    JsonNode schema = get("/schemas/ids/" + id);
    if (schema == null) return null;
    Set<String> subjects = new HashSet<>();
    JsonNode versions = get("/schemas/ids/" + id + "/versions");
    if (versions != null) for (JsonNode v : versions) subjects.add(v.get("subject").asText());
    Writer writer = new Writer(new Schema.Parser().parse(schema.get("schema").asText()), subjects);
    writers.put(id, writer);
    return writer;
  }

  private JsonNode get(String path) {
    long deadline = System.currentTimeMillis() + 120_000;
    while (true) {
      try {
        HttpResponse<String> response = http.send(HttpRequest.newBuilder(URI.create(config.registryUrl + path)).timeout(Duration.ofSeconds(10)).GET().build(), HttpResponse.BodyHandlers.ofString());
        if (response.statusCode() == 404) return null;
        if (response.statusCode() == 200) return json.readTree(response.body());
        if (System.currentTimeMillis() > deadline) throw new IllegalStateException("registry answered " + response.statusCode() + " for " + path);
      } catch (IOException e) {
        if (System.currentTimeMillis() > deadline) throw new IllegalStateException("registry unreachable: " + e.getMessage(), e);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("interrupted", e);
      }
      try {
        Thread.sleep(500);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        throw new IllegalStateException("interrupted", e);
      }
    }
  }
}
