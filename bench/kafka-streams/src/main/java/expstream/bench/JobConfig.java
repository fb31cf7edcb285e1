package expstream.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.File;
import java.io.IOException;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;

/**
 * What the bench hands the job (one JSON file, written by bench/kafkaStreamsBench.ts): where the
 * broker and registry are, the topics, the experiments as the control service published them,
 * and the limits ingest and aggregate run with (their defaults in services/common/config.ts).
 */
final class JobConfig {
  record Metric(String name, boolean conversion) {}

  record Experiment(String id, Set<String> variants, Map<String, Metric> metrics, long attributionWindowMs) {}

  final String bootstrapServers;
  final String applicationId;
  final String registryUrl;
  final String exposuresTopic;
  final String metricsTopic;
  final String totalsTopic;
  final String stateDir;
  final String schemasDir;
  final Map<String, Experiment> experiments = new HashMap<>();
  final Set<String> experimentMetrics = new HashSet<>();
  final long maxFutureSkewMs;
  final long maxEventAgeMs;
  final int maxIdLength;
  final double maxAbsMetricValue;
  final int maxPayloadBytes;
  final long earlyGraceMs;
  final int earlyKept;

  private JobConfig(JsonNode json) {
    bootstrapServers = json.get("bootstrapServers").asText();
    applicationId = json.get("applicationId").asText();
    registryUrl = json.get("registryUrl").asText();
    exposuresTopic = json.get("exposuresTopic").asText();
    metricsTopic = json.get("metricsTopic").asText();
    totalsTopic = json.get("totalsTopic").asText();
    stateDir = json.get("stateDir").asText();
    schemasDir = json.get("schemasDir").asText();
    for (JsonNode e : json.get("experiments")) {
      Set<String> variants = new HashSet<>();
      for (JsonNode v : e.get("variants")) variants.add(v.asText());
      Map<String, Metric> metrics = new HashMap<>();
      for (JsonNode m : e.get("metrics")) {
        String type = m.get("type").asText();
        if (!type.equals("sum") && !type.equals("conversion")) throw new IllegalArgumentException("metric type " + type + " is not modelled by this job");
        metrics.put(m.get("name").asText(), new Metric(m.get("name").asText(), type.equals("conversion")));
        experimentMetrics.add(m.get("name").asText());
      }
      String id = e.get("id").asText();
      experiments.put(id, new Experiment(id, variants, metrics, e.get("attributionWindowMs").asLong()));
    }
    JsonNode limits = json.get("limits");
    maxFutureSkewMs = limits.get("maxFutureSkewMs").asLong();
    maxEventAgeMs = limits.get("maxEventAgeMs").asLong();
    maxIdLength = limits.get("maxIdLength").asInt();
    maxAbsMetricValue = limits.get("maxAbsMetricValue").asDouble();
    maxPayloadBytes = limits.get("maxPayloadBytes").asInt();
    earlyGraceMs = limits.get("earlyMetricGraceMs").asLong();
    earlyKept = limits.get("earlyMetricsKept").asInt();
  }

  static JobConfig read(String path) throws IOException {
    return new JobConfig(new ObjectMapper().readTree(new File(path)));
  }
}
