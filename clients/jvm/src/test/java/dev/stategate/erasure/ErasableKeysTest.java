package dev.stategate.erasure;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.UUID;

import org.apache.kafka.common.utils.Utils;
import org.junit.jupiter.api.Test;

class ErasableKeysTest {

    static final String GUID = "0123456789abcdef0123456789abcdef";

    /**
     * Apache Kafka's UtilsTest.testMurmur2 (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java,
     * apache/kafka commit f55581dc73953c3509a4702433aeeeddc2970779): Utils.murmur2 of each input.
     */
    static final Map<String, Integer> KAFKA_MURMUR2 = new LinkedHashMap<>();

    static {
        KAFKA_MURMUR2.put("21", -973932308);
        KAFKA_MURMUR2.put("foobar", -790332482);
        KAFKA_MURMUR2.put("a-little-bit-long-string", -985981536);
        KAFKA_MURMUR2.put("a-little-bit-longer-string", -1486304829);
        KAFKA_MURMUR2.put("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971);
        KAFKA_MURMUR2.put("abc", 479470107);
    }

    /** The same business keys and partitions as tests/test_erasable_keys.py's SHARED_PARTITIONS. */
    static final Object[][] SHARED_PARTITIONS = {
        {"order-1", Map.of(6, 4, 7, 4, 100, 26)},
        {"customer-42", Map.of(6, 3, 7, 1, 100, 53)},
        {"ünïcødé", Map.of(6, 2, 7, 6, 100, 26)},
        {"", Map.of(6, 3, 7, 2, 100, 81)},
    };

    static byte[] bytes(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }

    @Test
    void murmur2IsKafkas() {
        KAFKA_MURMUR2.forEach((input, expected) -> assertEquals(expected, Utils.murmur2(bytes(input)), input));
    }

    @Test
    void partitionsFollowKafkasDefaultForPlainAndErasableKeys() {
        KAFKA_MURMUR2.forEach((input, hash) -> {
            for (int partitions : new int[] {1, 6, 7, 100}) {
                int expected = (hash & 0x7fffffff) % partitions;
                assertEquals(expected, ErasableKeys.partitionFor(bytes(input), partitions), input);
                assertEquals(expected, ErasableKeys.partitionFor(ErasableKeys.erasableKey(input), partitions), input);
            }
        });
    }

    @Test
    @SuppressWarnings("unchecked")
    void thePartitionsThePythonTestsExpect() {
        for (Object[] row : SHARED_PARTITIONS) {
            String key = (String) row[0];
            ((Map<Integer, Integer>) row[1]).forEach((partitions, partition) -> {
                assertEquals(partition, ErasableKeys.partitionFor(bytes(key), partitions), key);
                assertEquals(partition, ErasableKeys.partitionFor(ErasableKeys.erasableKey(key, GUID), partitions), key);
            });
        }
    }

    @Test
    void theFormatByteForByte() {
        byte[] key = ErasableKeys.erasableKey("order-1", GUID);
        assertArrayEquals(bytes("order-1\0" + GUID), key);
        assertEquals(bytes("order-1").length + 33, key.length);
        assertArrayEquals(key, ErasableKeys.erasableKey(bytes("order-1"), GUID));
        assertArrayEquals(bytes("ü\0" + GUID), ErasableKeys.erasableKey("ü", GUID));
        assertEquals("order-1\0" + GUID, ErasableKeys.erasableKeyString("order-1", GUID));
        assertArrayEquals(key, bytes(ErasableKeys.erasableKeyString("order-1", GUID)));
    }

    @Test
    void newGuidsAreRandomUuid4Hex() {
        Set<String> guids = new HashSet<>();
        for (int i = 0; i < 100; i++) {
            String guid = ErasableKeys.newGuid();
            assertTrue(guid.matches("[0-9a-f]{32}"), guid);
            assertEquals(4, UUID.fromString(guid.replaceFirst("(.{8})(.{4})(.{4})(.{4})(.{12})", "$1-$2-$3-$4-$5")).version());
            guids.add(guid);
        }
        assertEquals(100, guids.size());
    }

    @Test
    void roundTrips() {
        Random random = new Random(42);
        for (int i = 0; i < 1000; i++) {
            byte[] business = new byte[random.nextInt(64)];
            random.nextBytes(business);
            for (int j = 0; j < business.length; j++) {
                if (business[j] == 0) {
                    business[j] = 1;
                }
            }
            String guid = ErasableKeys.newGuid();
            byte[] raw = ErasableKeys.erasableKey(business, guid);
            assertArrayEquals(business, ErasableKeys.businessKey(raw));
            assertEquals(guid, ErasableKeys.guidOf(raw));
            assertEquals(ErasableKeys.partitionFor(business, 1 + i % 50), ErasableKeys.partitionFor(raw, 1 + i % 50));
        }
        String raw = ErasableKeys.erasableKeyString("ünïcødé", GUID);
        assertEquals("ünïcødé", ErasableKeys.businessKey(raw));
        assertEquals(GUID, ErasableKeys.guidOf(raw));
        assertArrayEquals(new byte[0], ErasableKeys.businessKey(ErasableKeys.erasableKey(new byte[0], GUID)));
    }

    @Test
    void plainKeysPassThrough() {
        String[] plain = {
            "",
            "order-1",
            "x".repeat(33),
            "a-little-bit-longer-string-than-thirty-three-bytes",
            "order-1\0" + GUID.toUpperCase(),
            "order-1\0" + GUID.substring(1),
            "order-1\0" + GUID.substring(1) + "g",
            "order-1-" + GUID,
            "order-1\0" + UUID.randomUUID().toString().substring(0, 32),
        };
        for (String key : plain) {
            byte[] raw = bytes(key);
            assertSame(raw, ErasableKeys.businessKey(raw), key);
            assertSame(key, ErasableKeys.businessKey(key), key);
            assertNull(ErasableKeys.guidOf(raw), key);
            assertNull(ErasableKeys.guidOf(key), key);
            assertFalse(ErasableKeys.isErasable(raw), key);
            assertEquals(Utils.toPositive(Utils.murmur2(raw)) % 6, ErasableKeys.partitionFor(raw, 6), key);
        }
    }

    @Test
    void businessKeysWithNulAreRefused() {
        for (String key : new String[] {"\0", "a\0b", "order-1\0" + GUID}) {
            assertThrows(IllegalArgumentException.class, () -> ErasableKeys.erasableKey(key, GUID), key);
            assertThrows(IllegalArgumentException.class, () -> ErasableKeys.erasableKey(bytes(key), GUID), key);
            assertThrows(IllegalArgumentException.class, () -> ErasableKeys.erasableKeyString(key, GUID), key);
        }
        assertThrows(IllegalArgumentException.class, () -> ErasableKeys.erasableKey("\ud800", GUID));
    }

    @Test
    void badGuidsAreRefused() {
        String[] bad = {
            "", GUID.substring(1), GUID + "0", GUID.toUpperCase(), UUID.randomUUID().toString(), "g".repeat(32),
            "０".repeat(32), "-" + GUID.substring(1), null,
        };
        for (String guid : bad) {
            assertThrows(IllegalArgumentException.class, () -> ErasableKeys.erasableKey("order-1", guid), guid);
        }
    }

    @Test
    void aTopicHasPartitions() {
        assertThrows(IllegalArgumentException.class, () -> ErasableKeys.partitionFor(bytes("order-1"), 0));
    }
}
