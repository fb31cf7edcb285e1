package expstream.bench;

/** A decoded, validated raw event: an exposure (metric null) or a metric event (experimentId, variantId null). */
record RawEvent(String userId, String experimentId, String variantId, String metric, double value, long eventTime) {
  boolean isExposure() {
    return metric == null;
  }
}
