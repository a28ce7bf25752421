package dev.stategate.erasure;

import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;

import org.apache.kafka.clients.producer.Partitioner;
import org.apache.kafka.common.Cluster;
import org.apache.kafka.common.PartitionInfo;

/**
 * Partitions by business key: a keyed record goes to
 * {@code Utils.toPositive(Utils.murmur2(businessKey(keyBytes))) % partitions}, where Kafka's default
 * partitioner would send its plain business key ({@link ErasableKeys#partitionFor}). Plain keys go
 * exactly where the default sends them. Configure with
 * {@code partitioner.class=dev.stategate.erasure.BusinessKeyPartitioner}.
 *
 * <p>A record without a key goes to a random available partition (any partition when none is
 * available), as Kafka's clients did before sticky partitioning: once a {@code partitioner.class}
 * is set, the producer's built-in sticky partitioner is out of reach (and a partitioner may not
 * answer "unknown").
 */
public class BusinessKeyPartitioner implements Partitioner {

    @Override
    public int partition(String topic, Object key, byte[] keyBytes, Object value, byte[] valueBytes, Cluster cluster) {
        List<PartitionInfo> partitions = cluster.partitionsForTopic(topic);
        if (keyBytes != null) {
            return ErasableKeys.partitionFor(keyBytes, partitions.size());
        }
        List<PartitionInfo> available = cluster.availablePartitionsForTopic(topic);
        List<PartitionInfo> candidates = available.isEmpty() ? partitions : available;
        return candidates.get(ThreadLocalRandom.current().nextInt(candidates.size())).partition();
    }

    @Override
    public void close() {
    }

    @Override
    public void configure(Map<String, ?> configs) {
    }
}
