package dev.stategate.erasure;

import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.UUID;

import org.apache.kafka.common.utils.Utils;

/**
 * The erasable key format: a business key, one NUL byte and a GUID, so that any single message
 * of a compacted topic can be deleted by a tombstone for its full key.
 *
 * <pre>
 * erasable key = business key ‖ 0x00 ‖ guid        (business key length + 33 bytes)
 * </pre>
 *
 * <ul>
 *   <li>business key: UTF-8 bytes that never contain 0x00 (it may be empty);</li>
 *   <li>0x00: one NUL byte, the separator;</li>
 *   <li>guid: exactly 32 lowercase hexadecimal ASCII characters ({@code [0-9a-f]}), a random
 *       UUID4's hex without dashes.</li>
 * </ul>
 *
 * <p>A key is erasable when it is at least 33 bytes long, its 33rd byte from the end is 0x00 and
 * its last 32 bytes are lowercase hex; its business key is everything before the separator. Any
 * other key is a plain key and is its own business key, so readers work on topics that mix both.
 *
 * <p>A keyed record's partition is {@code Utils.toPositive(Utils.murmur2(businessKey)) % partitions}:
 * Kafka's default for keyed records, applied to the business key only, so an erasable key lands
 * on the partition its plain business key gets from Kafka's default partitioner.
 *
 * <p>The same format, byte for byte, is stategate's Python {@code streams/erasable_keys.py}.
 */
public final class ErasableKeys {

    /** The separator between business key and GUID. */
    public static final byte SEPARATOR = 0x00;

    /** The GUID's length: 32 lowercase hex characters. */
    public static final int GUID_LENGTH = 32;

    /** What an erasable key adds to its business key: the separator and the GUID, 33 bytes. */
    public static final int SUFFIX_LENGTH = 1 + GUID_LENGTH;

    private ErasableKeys() {
    }

    /** A fresh GUID: a random UUID4 as 32 lowercase hex characters. */
    public static String newGuid() {
        return UUID.randomUUID().toString().replace("-", "");
    }

    /** {@code businessKey} ‖ 0x00 ‖ a new GUID. */
    public static byte[] erasableKey(byte[] businessKey) {
        return erasableKey(businessKey, newGuid());
    }

    /**
     * {@code businessKey} ‖ 0x00 ‖ {@code guid}.
     *
     * @throws IllegalArgumentException if the business key contains 0x00 or the guid is not 32
     *     lowercase hex characters
     */
    public static byte[] erasableKey(byte[] businessKey, String guid) {
        for (byte b : businessKey) {
            if (b == SEPARATOR) {
                throw new IllegalArgumentException("a business key never contains the separator byte 0x00");
            }
        }
        if (guid == null || !isGuid(guid)) {
            throw new IllegalArgumentException("a guid is " + GUID_LENGTH + " lowercase hex characters: " + guid);
        }
        byte[] key = Arrays.copyOf(businessKey, businessKey.length + SUFFIX_LENGTH);
        key[businessKey.length] = SEPARATOR;
        System.arraycopy(guid.getBytes(StandardCharsets.US_ASCII), 0, key, businessKey.length + 1, GUID_LENGTH);
        return key;
    }

    /** The UTF-8 {@code businessKey} ‖ 0x00 ‖ a new GUID. */
    public static byte[] erasableKey(String businessKey) {
        return erasableKey(businessKey, newGuid());
    }

    /**
     * The UTF-8 {@code businessKey} ‖ 0x00 ‖ {@code guid}.
     *
     * @throws IllegalArgumentException if the business key contains U+0000 or is not valid UTF-16
     *     (an unpaired surrogate), or the guid is not 32 lowercase hex characters
     */
    public static byte[] erasableKey(String businessKey, String guid) {
        return erasableKey(utf8(businessKey), guid);
    }

    /**
     * The erasable key as a String, for producers with String keys: {@code businessKey + "\0" + guid}.
     * Its UTF-8 bytes are {@link #erasableKey(String, String)}.
     */
    public static String erasableKeyString(String businessKey, String guid) {
        erasableKey(businessKey, guid); // the same checks
        return businessKey + (char) SEPARATOR + guid;
    }

    /** Whether {@code raw} is an erasable key (ends with 0x00 and a GUID). */
    public static boolean isErasable(byte[] raw) {
        int n = raw.length;
        if (n < SUFFIX_LENGTH || raw[n - SUFFIX_LENGTH] != SEPARATOR) {
            return false;
        }
        for (int i = n - GUID_LENGTH; i < n; i++) {
            if (!isLowerHex((char) (raw[i] & 0xff))) {
                return false;
            }
        }
        return true;
    }

    /** Whether the String key {@code raw} is an erasable key (ends with U+0000 and a GUID). */
    public static boolean isErasable(String raw) {
        int n = raw.length();
        return n >= SUFFIX_LENGTH && raw.charAt(n - SUFFIX_LENGTH) == SEPARATOR && isGuid(raw.substring(n - GUID_LENGTH));
    }

    /** The business key of a record key: without its suffix if it has one, else {@code raw} itself. */
    public static byte[] businessKey(byte[] raw) {
        return isErasable(raw) ? Arrays.copyOf(raw, raw.length - SUFFIX_LENGTH) : raw;
    }

    /** The business key of a String record key: without its suffix if it has one, else {@code raw} itself. */
    public static String businessKey(String raw) {
        return isErasable(raw) ? raw.substring(0, raw.length() - SUFFIX_LENGTH) : raw;
    }

    /** The GUID of an erasable key, or null for a plain key. */
    public static String guidOf(byte[] raw) {
        return isErasable(raw)
                ? new String(raw, raw.length - GUID_LENGTH, GUID_LENGTH, StandardCharsets.US_ASCII)
                : null;
    }

    /** The GUID of an erasable String key, or null for a plain key. */
    public static String guidOf(String raw) {
        return isErasable(raw) ? raw.substring(raw.length() - GUID_LENGTH) : null;
    }

    /** The partition of a keyed record: Kafka's murmur2 partitioning of its business key. */
    public static int partitionFor(byte[] key, int partitions) {
        if (partitions < 1) {
            throw new IllegalArgumentException("a topic has at least one partition, not " + partitions);
        }
        return Utils.toPositive(Utils.murmur2(businessKey(key))) % partitions;
    }

    private static boolean isGuid(String candidate) {
        if (candidate.length() != GUID_LENGTH) {
            return false;
        }
        for (int i = 0; i < GUID_LENGTH; i++) {
            if (!isLowerHex(candidate.charAt(i))) {
                return false;
            }
        }
        return true;
    }

    private static boolean isLowerHex(char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    }

    /** Strict UTF-8: String.getBytes would turn an unpaired surrogate into '?' without a word. */
    private static byte[] utf8(String text) {
        try {
            ByteBuffer encoded = StandardCharsets.UTF_8.newEncoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .encode(CharBuffer.wrap(text));
            return Arrays.copyOfRange(encoded.array(), encoded.position(), encoded.limit());
        } catch (CharacterCodingException e) {
            throw new IllegalArgumentException("a business key is valid Unicode text: " + e.getMessage(), e);
        }
    }
}
