package dev.stategate.erasure;

import java.util.Map;

import org.apache.kafka.clients.producer.ProducerInterceptor;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;

/**
 * Appends a fresh GUID to each record's key, so that every message of an erasable topic has a key
 * of its own ({@link ErasableKeys}). Configure with
 * {@code interceptor.classes=dev.stategate.erasure.GuidKeyProducerInterceptor}, together with
 * {@code partitioner.class=dev.stategate.erasure.BusinessKeyPartitioner} so that a business key's
 * messages stay on one partition.
 *
 * <ul>
 *   <li>{@code byte[]} keys get 0x00 and 32 hex digits; {@code String} keys get U+0000 and the same
 *       digits (with a UTF-8 {@code StringSerializer}, the same bytes).</li>
 *   <li>A record without a key is left alone.</li>
 *   <li>A key that already ends with a suffix keeps it: a tombstone for one message's full key goes
 *       through unchanged.</li>
 *   <li>A business key containing 0x00, or a key of another type, is refused with an
 *       IllegalArgumentException. Kafka does not pass an interceptor's exception on to the caller:
 *       it logs a WARN ("Error executing interceptor onSend callback") and sends the record as it
 *       was, without a suffix.</li>
 * </ul>
 */
public class GuidKeyProducerInterceptor implements ProducerInterceptor<Object, Object> {

    @Override
    public ProducerRecord<Object, Object> onSend(ProducerRecord<Object, Object> record) {
        Object key = record.key();
        Object erasable;
        if (key == null) {
            return record;
        } else if (key instanceof byte[] bytes) {
            if (ErasableKeys.isErasable(bytes)) {
                return record;
            }
            erasable = ErasableKeys.erasableKey(bytes);
        } else if (key instanceof String text) {
            if (ErasableKeys.isErasable(text)) {
                return record;
            }
            erasable = ErasableKeys.erasableKeyString(text, ErasableKeys.newGuid());
        } else {
            throw new IllegalArgumentException(
                    "erasable keys are byte[] or String, not " + key.getClass().getName());
        }
        return new ProducerRecord<>(
                record.topic(), record.partition(), record.timestamp(), erasable, record.value(), record.headers());
    }

    @Override
    public void onAcknowledgement(RecordMetadata metadata, Exception exception) {
    }

    @Override
    public void close() {
    }

    @Override
    public void configure(Map<String, ?> configs) {
    }
}
