package expstream.bench;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What the job keeps per user in its RocksDB store, as the aggregator does
 * (services/aggregate/userState.ts): per experiment the variant of the first exposure, when,
 * and whether another variant was seen; per (experiment, metric) the user's running value;
 * the user's recent metric events (for an exposure that arrives after them); the newest event
 * time seen. Encoded as compact binary.
 */
final class UserState {
  static final class Assignment {
    final String variant;
    final long exposedAt;
    boolean conflicted;

    Assignment(String variant, long exposedAt, boolean conflicted) {
      this.variant = variant;
      this.exposedAt = exposedAt;
      this.conflicted = conflicted;
    }
  }

  record Early(String metric, double value, long eventTime) {}

  final Map<String, Assignment> assignments = new LinkedHashMap<>();
  /** Keyed by experimentId + '\0' + metric. */
  final Map<String, Double> totals = new LinkedHashMap<>();
  List<Early> early = new ArrayList<>();
  long newest;

  byte[] encode() {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream(64);
    try (DataOutputStream out = new DataOutputStream(bytes)) {
      out.writeShort(assignments.size());
      for (Map.Entry<String, Assignment> a : assignments.entrySet()) {
        out.writeUTF(a.getKey());
        out.writeUTF(a.getValue().variant);
        out.writeLong(a.getValue().exposedAt);
        out.writeBoolean(a.getValue().conflicted);
      }
      out.writeShort(totals.size());
      for (Map.Entry<String, Double> t : totals.entrySet()) {
        out.writeUTF(t.getKey());
        out.writeDouble(t.getValue());
      }
      out.writeShort(early.size());
      for (Early e : early) {
        out.writeUTF(e.metric);
        out.writeDouble(e.value);
        out.writeLong(e.eventTime);
      }
      out.writeLong(newest);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return bytes.toByteArray();
  }

  static UserState decode(byte[] bytes) {
    UserState state = new UserState();
    if (bytes == null) return state;
    try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(bytes))) {
      for (int i = in.readShort(); i > 0; i--) state.assignments.put(in.readUTF(), new Assignment(in.readUTF(), in.readLong(), in.readBoolean()));
      for (int i = in.readShort(); i > 0; i--) state.totals.put(in.readUTF(), in.readDouble());
      for (int i = in.readShort(); i > 0; i--) state.early.add(new Early(in.readUTF(), in.readDouble(), in.readLong()));
      state.newest = in.readLong();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return state;
  }
}
