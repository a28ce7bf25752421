package dev.stategate.erasure;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.apache.kafka.clients.consumer.ConsumerInterceptor;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;

/**
 * Hands the application each record with its business key: the GUID suffix of an erasable key is
 * stripped ({@code byte[]} and {@code String} keys; plain keys, null keys and keys of other types are
 * left alone). Configure with
 * {@code interceptor.classes=dev.stategate.erasure.GuidStrippingConsumerInterceptor}.
 *
 * <p>The application then no longer sees the full key, which is what a tombstone needs; read
 * without this interceptor (or with {@link ErasableKeys#guidOf}) to find one message's full key.
 */
public class GuidStrippingConsumerInterceptor implements ConsumerInterceptor<Object, Object> {

    @Override
    public ConsumerRecords<Object, Object> onConsume(ConsumerRecords<Object, Object> records) {
        Map<TopicPartition, List<ConsumerRecord<Object, Object>>> stripped = new HashMap<>();
        for (TopicPartition partition : records.partitions()) {
            List<ConsumerRecord<Object, Object>> batch = records.records(partition);
            List<ConsumerRecord<Object, Object>> out = new ArrayList<>(batch.size());
            for (ConsumerRecord<Object, Object> record : batch) {
                out.add(strip(record));
            }
            stripped.put(partition, out);
        }
        return new ConsumerRecords<>(stripped, records.nextOffsets());
    }

    private static ConsumerRecord<Object, Object> strip(ConsumerRecord<Object, Object> record) {
        Object key = record.key();
        Object business;
        if (key instanceof byte[] bytes && ErasableKeys.isErasable(bytes)) {
            business = ErasableKeys.businessKey(bytes);
        } else if (key instanceof String text && ErasableKeys.isErasable(text)) {
            business = ErasableKeys.businessKey(text);
        } else {
            return record;
        }
        return new ConsumerRecord<>(
                record.topic(), record.partition(), record.offset(), record.timestamp(), record.timestampType(),
                record.serializedKeySize(), record.serializedValueSize(), business, record.value(), record.headers(),
                record.leaderEpoch(), record.deliveryCount());
    }

    @Override
    public void onCommit(Map<TopicPartition, OffsetAndMetadata> offsets) {
    }

    @Override
    public void close() {
    }

    @Override
    public void configure(Map<String, ?> configs) {
    }
}
