package dev.stategate.erasure;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.Cluster;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.record.TimestampType;
import org.junit.jupiter.api.Test;

/** The interceptors and the partitioner, without a broker (tests/test_jvm_keys.py runs them on one). */
class ClientClassesTest {

    static final String GUID = ErasableKeysTest.GUID;
    static final Node NODE = new Node(0, "127.0.0.1", 9092);

    static byte[] bytes(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }

    /** A topic "t" with {@code count} partitions; those in {@code down} have no leader. */
    static Cluster cluster(int count, int... down) {
        Set<Integer> leaderless = new HashSet<>();
        for (int partition : down) {
            leaderless.add(partition);
        }
        List<PartitionInfo> partitions = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            Node leader = leaderless.contains(i) ? null : NODE;
            partitions.add(new PartitionInfo("t", i, leader, new Node[] {NODE}, new Node[] {NODE}));
        }
        return new Cluster("c", List.of(NODE), partitions, Set.of(), Set.of());
    }

    @Test
    void theProducerInterceptorAppendsAGuidToByteKeys() {
        ProducerRecord<Object, Object> record = new ProducerRecord<>("t", 3, 17L, bytes("order-1"), "v",
                new RecordHeaders().add("h", bytes("x")));
        ProducerRecord<Object, Object> sent = new GuidKeyProducerInterceptor().onSend(record);
        byte[] key = (byte[]) sent.key();
        assertEquals(bytes("order-1").length + 33, key.length);
        assertArrayEquals(bytes("order-1"), ErasableKeys.businessKey(key));
        assertTrue(ErasableKeys.guidOf(key).matches("[0-9a-f]{32}"));
        assertEquals("t", sent.topic());
        assertEquals(3, sent.partition());
        assertEquals(17L, sent.timestamp());
        assertEquals("v", sent.value());
        assertArrayEquals(bytes("x"), sent.headers().lastHeader("h").value());
    }

    @Test
    void theProducerInterceptorAppendsAGuidToStringKeysAndANewOneEachTime() {
        GuidKeyProducerInterceptor interceptor = new GuidKeyProducerInterceptor();
        String first = (String) interceptor.onSend(new ProducerRecord<>("t", "ünï", "v")).key();
        String second = (String) interceptor.onSend(new ProducerRecord<>("t", "ünï", "v")).key();
        assertEquals("ünï", ErasableKeys.businessKey(first));
        assertEquals("ünï", ErasableKeys.businessKey(second));
        assertNotEquals(first, second);
        assertArrayEquals(ErasableKeys.erasableKey("ünï", ErasableKeys.guidOf(first)), bytes(first));
    }

    @Test
    void theProducerInterceptorLeavesNullKeysAndFullKeysAlone() {
        GuidKeyProducerInterceptor interceptor = new GuidKeyProducerInterceptor();
        ProducerRecord<Object, Object> keyless = new ProducerRecord<>("t", "v");
        assertSame(keyless, interceptor.onSend(keyless));
        ProducerRecord<Object, Object> tombstone = new ProducerRecord<>("t", ErasableKeys.erasableKey("order-1", GUID), null);
        assertSame(tombstone, interceptor.onSend(tombstone));
        ProducerRecord<Object, Object> text = new ProducerRecord<>("t", ErasableKeys.erasableKeyString("order-1", GUID), null);
        assertSame(text, interceptor.onSend(text));
    }

    @Test
    void theProducerInterceptorRefusesWhatCannotBeErasable() {
        GuidKeyProducerInterceptor interceptor = new GuidKeyProducerInterceptor();
        assertThrows(IllegalArgumentException.class, () -> interceptor.onSend(new ProducerRecord<>("t", "a\0b", "v")));
        assertThrows(IllegalArgumentException.class, () -> interceptor.onSend(new ProducerRecord<>("t", 42L, "v")));
    }

    @Test
    void thePartitionerHashesTheBusinessKey() {
        BusinessKeyPartitioner partitioner = new BusinessKeyPartitioner();
        for (Object[] row : ErasableKeysTest.SHARED_PARTITIONS) {
            String key = (String) row[0];
            @SuppressWarnings("unchecked")
            int expected = ((Map<Integer, Integer>) row[1]).get(6);
            byte[] full = ErasableKeys.erasableKey(key);
            assertEquals(expected, partitioner.partition("t", full, full, "v", bytes("v"), cluster(6)), key);
            assertEquals(expected, partitioner.partition("t", key, bytes(key), "v", bytes("v"), cluster(6, 0, 1)), key);
        }
    }

    @Test
    void thePartitionerSpreadsKeylessRecordsOverAvailablePartitions() {
        BusinessKeyPartitioner partitioner = new BusinessKeyPartitioner();
        Set<Integer> chosen = new HashSet<>();
        for (int i = 0; i < 200; i++) {
            chosen.add(partitioner.partition("t", null, null, "v", bytes("v"), cluster(6, 0, 2, 4)));
        }
        assertEquals(Set.of(1, 3, 5), chosen);
        Set<Integer> none = new HashSet<>();
        for (int i = 0; i < 200; i++) {
            none.add(partitioner.partition("t", null, null, "v", bytes("v"), cluster(3, 0, 1, 2)));
        }
        assertEquals(Set.of(0, 1, 2), none);
    }

    @Test
    void theConsumerInterceptorStripsSuffixesAndKeepsTheRest() {
        TopicPartition tp = new TopicPartition("t", 2);
        byte[] full = ErasableKeys.erasableKey("order-1", GUID);
        RecordHeaders headers = new RecordHeaders();
        headers.add("h", bytes("x"));
        List<ConsumerRecord<Object, Object>> batch = List.of(
                new ConsumerRecord<>("t", 2, 10L, 99L, TimestampType.CREATE_TIME, full.length, 1, full, "v", headers,
                        Optional.of(5), Optional.empty()),
                new ConsumerRecord<>("t", 2, 11L, ErasableKeys.erasableKeyString("ünï", GUID), "w"),
                new ConsumerRecord<>("t", 2, 12L, bytes("plain"), "x"),
                new ConsumerRecord<>("t", 2, 13L, null, "y"),
                new ConsumerRecord<>("t", 2, 14L, 42L, "z"));
        Map<TopicPartition, OffsetAndMetadata> next = Map.of(tp, new OffsetAndMetadata(15L, Optional.of(5), ""));
        ConsumerRecords<Object, Object> out = new GuidStrippingConsumerInterceptor()
                .onConsume(new ConsumerRecords<>(Map.of(tp, batch), next));

        List<ConsumerRecord<Object, Object>> records = out.records(tp);
        assertEquals(5, records.size());
        ConsumerRecord<Object, Object> first = records.get(0);
        assertArrayEquals(bytes("order-1"), (byte[]) first.key());
        assertEquals(10L, first.offset());
        assertEquals(99L, first.timestamp());
        assertEquals(full.length, first.serializedKeySize());
        assertEquals(Optional.of(5), first.leaderEpoch());
        assertSame(headers, first.headers());
        assertEquals("ünï", records.get(1).key());
        assertSame(batch.get(2), records.get(2));
        assertNull(records.get(3).key());
        assertEquals(42L, records.get(4).key());
        assertEquals(next, out.nextOffsets());
    }
}
